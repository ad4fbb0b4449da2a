"""The dashboard running as `make run` runs it, for the benchmarks that watch it end to end: a Celery
worker, beat, the web server and (when asked) the events server as child processes on loopback, and a
client for the simulator's control API (its state, and advancing its clock). Not a benchmark itself
(run_all.py only runs bench_*.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import REPO, Children, wait_for_port


def wait_for_log(path: Path, text: bytes, process, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_bytes():
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start:\n{path.read_text(errors='replace')[-3000:]}")


def start_worker(children: Children, workdir: Path, env: dict[str, str], name: str = "bench") -> None:
    """A Celery worker as production runs it (prefork, concurrency 2), waited for until it is ready."""
    worker_log = workdir / "worker.log"
    worker = children.start(
        "worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "dashboard",
            "worker",
            "--loglevel=INFO",
            "--pool=prefork",
            "--concurrency=2",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"{name}-{os.getpid()}@%h",
        ],
        log=worker_log,
        cwd=REPO,
        env=env,
    )
    wait_for_log(worker_log, b" ready.", worker, 60, "the Celery worker")


def start_events(children: Children, workdir: Path, env: dict[str, str]) -> None:
    """The events server (push, batches/views_events.py) as deployed: gunicorn's ASGI worker with
    deploy/gunicorn_events.conf.py, listening on env's DASHBOARD_EVENTS_BIND."""
    port = int(env["DASHBOARD_EVENTS_BIND"].rsplit(":", 1)[1])
    config = str(REPO / "deploy" / "gunicorn_events.conf.py")
    events = children.start(
        "events",
        [sys.executable, "-m", "gunicorn", "dashboard.asgi_events", "--config", config],
        log=workdir / "events.log",
        cwd=REPO,
        env=env,
    )
    wait_for_port(port, timeout=60, process=events)


def start_stack(
    children: Children, workdir: Path, env: dict[str, str], web_port: int, *, events: bool = False
) -> None:
    start_worker(children, workdir, env)
    if events:
        start_events(children, workdir, env)
    children.start(
        "beat",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "dashboard",
            "beat",
            "--loglevel=INFO",
            "--schedule",
            str(workdir / "celerybeat-schedule"),
        ],
        log=workdir / "beat.log",
        cwd=REPO,
        env=env,
    )
    web = children.start(
        "web",
        [sys.executable, "manage.py", "runserver", "--noreload", "--insecure", f"127.0.0.1:{web_port}"],
        log=workdir / "web.log",
        cwd=REPO,
        env=env,
    )
    wait_for_port(web_port, timeout=60, process=web)


class Simulator:
    def __init__(self, base_url: str) -> None:
        import httpx

        self.control = httpx.Client(base_url=base_url.removesuffix("/v1"), timeout=30)

    def state(self) -> dict[str, Any]:
        response = self.control.get("/_sim/state")
        response.raise_for_status()
        return response.json()

    def batches(self) -> dict[str, dict]:
        return {batch["id"]: batch for batch in self.state()["batches"]}

    def plan(self, batch_id: str) -> dict[str, Any]:
        """The batch's simulated life (simulated seconds): `final_at`, when it reaches its outcome."""
        response = self.control.get(f"/_sim/plan/{batch_id}")
        response.raise_for_status()
        return response.json()

    def advance(self, seconds: float) -> None:
        self.control.post("/_sim/advance", json={"seconds": seconds}).raise_for_status()

    def cancel(self, batch_id: str, key: str) -> None:
        """Cancel a batch through the API, as a client does (the simulator then cancels it after its
        cancelling time)."""
        headers = {"Authorization": f"Bearer {key}"}
        self.control.post(f"/v1/batches/{batch_id}/cancel", headers=headers).raise_for_status()

    def close(self) -> None:
        self.control.close()
