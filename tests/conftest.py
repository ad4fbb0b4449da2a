"""What every level of the suite needs: free ports, a private Redis (the cache is Redis, as in
production), the API simulator in a thread, and the run-wide check that no API key reaches a page or a
log line; all on loopback.

The levels mirror the code: unit/ (this process only: pure functions, views through Django's test
client, the API client against respx or a simulator in a thread), integration/ (real Celery workers
and beat, the dashboard's own server), browser/ (Playwright), simulator/ (the fake API on its own),
faults/ (fault injection, part of integration), deploy/ (`make test-deploy` only). Helpers that more
than one level uses live in support/."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The deployment tests start nginx, gunicorn, PostgreSQL and Celery from deploy/: `make test-deploy`
# runs them on their own (DASHBOARD_DEPLOY_TESTS=1), `make test` leaves them out.
collect_ignore = [] if os.environ.get("DASHBOARD_DEPLOY_TESTS") == "1" else ["deploy"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process meant to listen on {port} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.fail("redis-server is not installed; `make test` installs it")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        url = f"redis://127.0.0.1:{port}/0"
        from dashboard.celery import app

        app.conf.broker_url = url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_settings(settings, redis_url: str) -> str:
    """Point the code under test (locks, task publishing) at the private Redis."""
    from dashboard import shared_redis

    settings.REDIS_URL = redis_url
    shared_redis.client.cache_clear()
    yield redis_url
    shared_redis.client.cache_clear()


@pytest.fixture(autouse=True)
def fresh_live_state(settings, redis_url: str) -> Iterator[None]:
    """The live path's Redis state (change counters, watchers, API budgets, refresh chains:
    batches/live.py, batches/pacing.py) is on the private Redis, and each test starts without any."""
    from dashboard import shared_redis

    settings.REDIS_URL = redis_url
    shared_redis.client.cache_clear()
    keys = list(shared_redis.client().scan_iter("batch-dashboard:*"))
    if keys:
        shared_redis.client().delete(*keys)
    yield
    shared_redis.client.cache_clear()


class Simulator:
    """A running API simulator and its control endpoints."""

    def __init__(self, server, base_url: str) -> None:
        import httpx

        self.server = server
        self.base_url = base_url
        self.control = httpx.Client(base_url=base_url.removesuffix("/v1"), timeout=30)

    def state(self) -> dict:
        response = self.control.get("/_sim/state")
        response.raise_for_status()
        return response.json()

    def batches(self) -> list[dict]:
        return self.state()["batches"]

    def count(self) -> int:
        return len(self.batches())

    def advance(self, seconds: float) -> None:
        self.control.post("/_sim/advance", json={"seconds": seconds}).raise_for_status()

    def set_faults(self, **faults) -> None:
        self.control.post("/_sim/faults", json=faults).raise_for_status()

    def requests(self, path_prefix: str = "/v1/") -> list[dict]:
        """What the simulator's /v1 routes received: method, path, answered status and count."""
        response = self.control.get("/_sim/requests", params={"path_prefix": path_prefix})
        response.raise_for_status()
        return response.json()["requests"]

    def cancels_accepted(self) -> dict[str, int]:
        """Batch id -> how many cancel requests the API answered with 200."""
        accepted: dict[str, int] = {}
        for row in self.requests("/v1/batches/"):
            if row["method"] == "POST" and row["path"].endswith("/cancel") and row["status"] == 200:
                batch_id = row["path"].removeprefix("/v1/batches/").removesuffix("/cancel")
                accepted[batch_id] = accepted.get(batch_id, 0) + row["count"]
        return accepted

    def close(self) -> None:
        from simulator.server import stop

        self.control.close()
        stop(self.server)


@pytest.fixture
def start_simulator():
    """Starts simulators in this process; speed 0 means the clock moves only when a test advances it."""
    from simulator.server import start_in_thread
    from simulator.state import SimWorld

    started: list[Simulator] = []

    def start(batches: int = 250, seed: int = 7, speed: float = 0.0) -> Simulator:
        world = SimWorld(seed=seed, batches=batches, speed=speed)
        server, base_url = start_in_thread(world)
        simulator = Simulator(server, base_url)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.close()


@pytest.fixture
def simulator(start_simulator) -> Simulator:
    return start_simulator()


SIMULATOR_KEY_ENV = "SIMULATOR_TEST_API_KEY"


@pytest.fixture
def simulator_connection(db, simulator: Simulator, monkeypatch):
    from batches.models import Connection

    monkeypatch.setenv(SIMULATOR_KEY_ENV, "sk-test-simulator")
    return Connection.objects.create(
        name="simulated", base_url=simulator.base_url, api_key_env=SIMULATOR_KEY_ENV
    )


class _SecretScanner(logging.Handler):
    """Keeps every log line, formatted as the configured handlers format it (their redaction filter
    included), so that the end of the run can check no API key was ever written out."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        from dashboard.redaction import RedactingFilter

        self.addFilter(RedactingFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="session", autouse=True)
def no_api_key_reaches_a_page_or_a_log_line():
    """Across the whole run: every rendered response and every log line is scanned for every API key
    the code used (each is registered for redaction when it is read)."""
    from django.core.handlers.base import BaseHandler

    from dashboard import redaction

    scanner = _SecretScanner()
    logging.getLogger().addHandler(scanner)
    bodies: list[bytes] = []
    original = BaseHandler.get_response

    def recording_get_response(self, request):
        response = original(self, request)
        if not response.streaming:
            bodies.append(bytes(response.content))
        return response

    BaseHandler.get_response = recording_get_response
    yield
    BaseHandler.get_response = original
    logging.getLogger().removeHandler(scanner)
    secrets = {s for s in redaction._known if len(s) >= 8}
    leaks = [
        secret
        for secret in secrets
        if any(secret in line for line in scanner.lines) or any(secret.encode() in body for body in bodies)
    ]
    assert leaks == [], "API keys leaked into a page or a log line"


def pytest_configure(config: pytest.Config) -> None:
    # Registered here rather than in pyproject.toml: `pytest -m faults tests/faults` runs the fault suite.
    config.addinivalue_line(
        "markers", "faults: fault injection (API faults, Redis and PostgreSQL outages, random requests)"
    )


@pytest.fixture(scope="session", autouse=True)
def shared_cache(redis_url: str) -> Iterator[str]:
    """The cache is Redis, as in production (dashboard/cache.py), on the private Redis's database 1
    so that clearing it never touches Celery's queues on database 0. Worker processes started by the
    tests get the same URL through subprocess_env."""
    from django.conf import settings
    from django.test.utils import override_settings

    url = redis_url.rsplit("/", 1)[0] + "/1"
    caches = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    override = override_settings(CACHES=caches, CACHE_REDIS_URL=url)
    override.enable()
    os.environ["DASHBOARD_CACHE_REDIS_URL"] = url
    yield url
    override.disable()


@pytest.fixture(autouse=True)
def fresh_cache(shared_cache: str):
    """Pages cache a few figures for seconds, and row polls who is polling; each test starts afresh."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def allow_loopback_connections(settings):
    """Test connections point at simulators on loopback, which the default refuses as internal
    addresses; tests of that refusal set DASHBOARD_ALLOW_INTERNAL_API_URLS back to False."""
    settings.DASHBOARD_ALLOW_INTERNAL_API_URLS = True
