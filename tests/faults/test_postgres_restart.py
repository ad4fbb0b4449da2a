"""PostgreSQL restarted under a running web process (gunicorn, production settings, persistent
connections with health checks): requests fail cleanly while it is down and succeed again afterwards,
without restarting the web process.

Runs only against the cluster `.ci/start-postgres` made (its data folder is named in
var/ci-postgres-dir), and only when that cluster is the one serving the test database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection as db_connection

from tests.conftest import REPO, free_port, wait_for_port
from tests.support.factories import make_batch, make_user
from tests.support.processes import stop_process_group, subprocess_env

CLUSTER_RECORD = REPO / "var" / "ci-postgres-dir"


class Cluster:
    def __init__(self, folder: Path) -> None:
        self.data = folder / "data"
        self.log = folder / "log"
        self.pg_ctl = Path((folder / "bin").read_text().strip()) / "pg_ctl"
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def port(self) -> int | None:
        # postmaster.pid: pid, data folder, start time, port, ...
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    def pg_ctl_run(self, *args: str) -> None:
        # -l: a server started by pg_ctl without a log file would hold our stdout open.
        subprocess.run(
            [*self.run_as, str(self.pg_ctl), "-D", str(self.data), "-w", *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def stop(self) -> None:
        self.pg_ctl_run("stop", "-m", "fast")

    def restart(self) -> None:
        # `restart` reuses the options the server was started with (postmaster.opts), port included,
        # and starts it when it is stopped.
        self.pg_ctl_run("restart", "-m", "fast", "-l", str(self.log))


@pytest.fixture
def cluster(transactional_db) -> Cluster:
    if db_connection.vendor != "postgresql":
        pytest.skip("the test database is not PostgreSQL (run with DATABASE_URL=postgres://...)")
    if not CLUSTER_RECORD.exists():
        pytest.skip("no cluster started by .ci/start-postgres (var/ci-postgres-dir is missing)")
    folder = Path(CLUSTER_RECORD.read_text().strip())
    if not (folder / "bin").exists() or not (folder / "data").exists():
        pytest.skip(f"var/ci-postgres-dir names {folder}, which holds no cluster")
    found = Cluster(folder)
    if found.run_as and not shutil.which("runuser"):
        pytest.skip("running as root, and runuser is missing")
    serving = int(db_connection.settings_dict.get("PORT") or 5432)
    if found.port() != serving:
        pytest.skip(f"the cluster in {folder} listens on {found.port()}, the test database on {serving}")
    yield found
    if found.port() is None:  # the test failed while the server was down
        found.restart()
    db_connection.close()


@pytest.fixture
def web_server(transactional_db, tmp_path: Path):
    """gunicorn with one sync worker and the production settings, on the test database."""
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    log = log_path.open("wb")
    env = subprocess_env(
        DJANGO_DEBUG="0",
        # The test process's key, so that the session it signs in with is valid there too.
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        DJANGO_SSL_REDIRECT="0",
        DJANGO_SECURE_COOKIES="0",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "dashboard.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "30",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=30)
        yield process, f"http://127.0.0.1:{port}", log_path
    finally:
        stop_process_group(process)
        log.close()


def test_the_web_process_recovers_from_a_postgresql_restart_without_a_restart_of_its_own(
    cluster, web_server, client
):
    process, base_url, log_path = web_server
    batch = make_batch(batch_id="batch_survives_restart")
    user = make_user("night-shift")
    client.force_login(user)
    cookies = {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}

    with httpx.Client(base_url=base_url, cookies=cookies, timeout=20) as web:

        def page_ok() -> bool:
            response = web.get(f"/batches/{batch.pk}/")
            return response.status_code == 200 and "batch_survives_restart" in response.text

        for _ in range(3):  # the worker now holds a persistent connection (CONN_MAX_AGE)
            assert page_ok()

        # A quick restart: the held connection is dead, and the very next request notices (the
        # health check) and reconnects instead of failing.
        cluster.restart()
        assert page_ok()
        assert web.get("/").status_code == 200

        # A longer outage: requests fail cleanly and quickly, with the plain error page.
        cluster.stop()
        for path in ("/", f"/batches/{batch.pk}/", "/?status=failed"):
            started = time.monotonic()
            response = web.get(path)
            assert response.status_code == 500, path
            assert time.monotonic() - started < 10
            assert "Traceback" not in response.text and "psycopg" not in response.text
        assert process.poll() is None

        cluster.restart()
        assert page_ok()
        assert web.get("/").status_code == 200

    assert process.poll() is None
    # The same worker served every request: no restart hid the failure.
    assert log_path.read_text(errors="replace").count("Booting worker with pid") == 1
    db_connection.close()  # this process's own connection died with the server
    assert user.username in [u.username for u in type(user).objects.all()]
