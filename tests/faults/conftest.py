"""Shared parts of the fault suite: the pages a wall screen polls, and a Redis a test may kill.
Fault injection is part of integration: every test here is marked `faults` and `integration`."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import free_port, wait_for_port
from tests.support.processes import start_worker  # noqa: F401 (a fixture of this level)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: mark only this folder's.
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


HTMX_SUMMARY = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "summary"}


def fetch_dashboard_pages(client: Client, batch_pk: int | None) -> dict[str, object]:
    """What an open dashboard asks for: the list page, its summary poll, and a batch's detail page."""
    responses = {"list": client.get("/"), "summary": client.get("/", **HTMX_SUMMARY)}
    if batch_pk is not None:
        responses["detail"] = client.get(f"/batches/{batch_pk}/")
    for name, response in responses.items():
        assert response.status_code == 200, f"the {name} page answered {response.status_code}"
    return responses


class RedisServer:
    """A redis-server of the test's own, on a fixed port, so it can be killed and brought back there."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: queued messages and locks are lost with it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def dedicated_redis(tmp_path: Path):
    if not Path(shutil.which("redis-server") or "/usr/bin/redis-server").exists():
        pytest.fail("redis-server is not installed; `make test` installs it")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()
