"""The deployment stack for tests/deploy/ (`make test-deploy`): see stack.py.

PostgreSQL: DEPLOY_DATABASE_URL names a server to create a fresh database on (.ci/run passes the
cluster of its PostgreSQL pass); without it a private cluster is started with .ci/start-postgres and
stopped at the end. Everything started is stopped at the end, also when a test or the start fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.stack import REPO, Stack, start_stack


def _start_private_postgres() -> tuple[str, dict[str, str]]:
    state = {"CI_POSTGRES_STATE": str(REPO / "var" / "deploy-postgres-dir")}
    done = subprocess.run(
        ["bash", str(REPO / ".ci" / "start-postgres")],
        env={**os.environ, **state},
        capture_output=True,
        text=True,
        check=True,
    )
    url = done.stdout.strip().rsplit("=", 1)[1]
    return url, state


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = os.environ.get("DEPLOY_DATABASE_URL", "")
    state: dict[str, str] | None = None
    if not url:
        url, state = _start_private_postgres()
    try:
        yield url
    finally:
        if state is not None:
            subprocess.run(["bash", str(REPO / ".ci" / "stop-postgres")], env={**os.environ, **state})


@pytest.fixture(scope="session")
def deploy_database(postgres_server: str) -> Iterator[str]:
    """A database of its own on that server, dropped at the end."""
    import psycopg

    name = f"deploy_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, deploy_database: str, redis_url: str) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("deploy")
    started = start_stack(workdir, deploy_database, redis_url)
    try:
        yield started
    finally:
        started.stop()
        # The logs stay readable after a failure: CI prints where they are.
        print(f"\ndeployment logs in {workdir}")
