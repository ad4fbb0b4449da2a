"""The events server (push, batches/views_events.py) as deploy/systemd/batch-dashboard-events.service runs
it, gunicorn's ASGI worker with deploy/gunicorn_events.conf.py, on loopback, the test database and the
private Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO, free_port, wait_for_port
from tests.support.processes import stop_process_group, subprocess_env

CONFIG = REPO / "deploy" / "gunicorn_events.conf.py"


@dataclass(frozen=True)
class EventsServer:
    port: int
    process: subprocess.Popen

    def worker_threads(self) -> int:
        """Threads of its (one) worker process, from Linux's /proc."""
        master = self.process.pid
        (worker,) = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        for line in Path(f"/proc/{worker}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise AssertionError(f"no thread count for {worker}")


@contextmanager
def events_server(redis_url: str, log: Path, **settings: str) -> Iterator[EventsServer]:
    """Starts it; stops it (and prints the end of its log) afterwards."""
    port = free_port()
    env = subprocess_env(
        REDIS_URL=redis_url,
        DASHBOARD_EVENTS_BIND=f"127.0.0.1:{port}",
        GUNICORN_ACCESS_LOG="-",
        **settings,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "dashboard.asgi_events", "--config", str(CONFIG)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=60, process=process)
        yield EventsServer(port, process)
    finally:
        stop_process_group(process)
        print(log.read_text(errors="replace")[-3000:])
