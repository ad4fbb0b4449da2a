"""Real Celery processes for the levels that start them (integration, faults, browser): a worker and
beat on the test database and the private Redis, each in its own session so that killpg stops it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection as db_connection

from tests.conftest import REPO


def database_url_for_subprocesses() -> str:
    """The URL of the test database, so that a worker process writes where the test reads."""
    params = db_connection.settings_dict
    if db_connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = quote(params.get("USER") or "")
    password = f":{quote(params['PASSWORD'])}" if params.get("PASSWORD") else ""
    return (
        f"postgres://{user}{password}@{params.get('HOST') or '127.0.0.1'}:"
        f"{params.get('PORT') or 5432}/{params['NAME']}"
    )


def subprocess_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_DEBUG="1",
        PYTHONUNBUFFERED="1",
        DATABASE_URL=database_url_for_subprocesses(),
        # Test connections point at the simulator on loopback (see allow_loopback_connections).
        DASHBOARD_ALLOW_INTERNAL_API_URLS="1",
    )
    env.update(overrides)
    return env


def stop_process_group(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM to the process's whole session, as systemd or Ctrl-C would stop it; SIGKILL if it has not
    exited within `timeout` seconds. Every helper process the tests start runs in a session of its own."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class WorkerProcess:
    """A real `celery worker` process; kill() sends SIGKILL, as a crash or OOM would."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 1) -> None:
        self.log_path = log_path
        self.log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "dashboard",
                "worker",
                "--loglevel=INFO",
                "--pool=prefork",
                f"--concurrency={concurrency}",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"test-{time.monotonic_ns()}@%h",
            ],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.log_path.read_bytes():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("celery worker did not start:\n" + self.output())

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process_group(self.process)
        self.log.close()


@pytest.fixture
def start_worker(transactional_db, redis_settings: str, tmp_path: Path):
    """Starts real Celery workers against the test database and the private Redis."""
    workers: list[WorkerProcess] = []

    def start(**env_overrides: str) -> WorkerProcess:
        env = subprocess_env(REDIS_URL=redis_settings, **env_overrides)
        worker = WorkerProcess(env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def start_beat_process(env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    """A real `celery beat` in its own session (so that killpg stops it), logging to tmp_path."""
    log = (tmp_path / "beat.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "dashboard",
            "beat",
            "--loglevel=INFO",
            "--schedule",
            str(tmp_path / "beat-schedule"),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture
def start_beat(transactional_db, redis_settings: str, tmp_path: Path):
    """Starts a real `celery beat` that ticks the sync dispatcher every second."""
    processes: list[subprocess.Popen] = []

    def start(**env_overrides: str) -> subprocess.Popen:
        env = subprocess_env(REDIS_URL=redis_settings, SYNC_DISPATCH_INTERVAL="1", **env_overrides)
        process = start_beat_process(env, tmp_path)
        processes.append(process)
        return process

    yield start
    for process in processes:
        stop_process_group(process)
