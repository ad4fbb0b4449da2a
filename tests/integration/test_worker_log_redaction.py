"""Worker and beat processes mask secrets in their logs, as the web process does.

Celery replaces the root logger's handlers (Django's LOGGING, with its redaction filter, included) and
gives its task logger a handler of its own, so the filter must be put back on whatever Celery
installs. Each test reads the real process's captured output.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from dashboard.redaction import MASK
from tests.conftest import REPO, free_port, wait_for_port
from tests.support.processes import start_beat_process, stop_process_group, subprocess_env

WAYS = ("from the Celery logger:", "from a module logger:", "from print():", "from stderr:")


def secret_line() -> tuple[str, str, str]:
    """A line with a key-shaped Authorization header and a registered secret with no key shape."""
    shaped = f"sk-test-{secrets.token_hex(12)}"
    known = f"known-{secrets.token_hex(12)}"
    return f"Authorization: Bearer {shaped}; the key is {known} here", shaped, known


def secret_env(known: str) -> dict[str, str]:
    # OPENAI_API_KEY is registered for redaction by the settings of every process that loads them.
    return {"OPENAI_API_KEY": known, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}


def wait_for(path: Path, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = path.read_text(errors="replace") if path.exists() else ""
        if text in output:
            return output
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path} after {timeout} s:\n{output}")


def assert_masked(output: str, shaped: str, known: str) -> None:
    assert shaped not in output
    assert known not in output
    for way in WAYS:
        lines = [line for line in output.splitlines() if way in line]
        assert lines, f"nothing logged {way!r}:\n{output}"
        assert all(f"Authorization: Bearer {MASK}; the key is {MASK} here" in line for line in lines)


def test_a_worker_masks_secrets_in_every_log_line_and_in_print_output(start_worker) -> None:
    from tests.integration.celery_test_tasks import log_a_secret

    line, shaped, known = secret_line()
    worker = start_worker(CELERY_WORKER_INCLUDE="tests.integration.celery_test_tasks", **secret_env(known))
    log_a_secret.delay(line)
    wait_for(worker.log_path, "from stderr:")
    time.sleep(0.5)  # the other lines of the same task, whatever order they arrive in
    assert_masked(worker.output(), shaped, known)


def test_beat_masks_secrets_in_every_log_line_and_in_print_output(transactional_db, tmp_path) -> None:
    line, shaped, known = secret_line()
    env = subprocess_env(
        REDIS_URL="redis://127.0.0.1:9/0",  # beat never needs the broker before it logs
        CELERY_BEAT_SCHEDULER="tests.integration.celery_test_tasks:SecretLoggingScheduler",
        REDACTION_TEST_LINE=line,
        **secret_env(known),
    )
    process = start_beat_process(env, tmp_path)
    try:
        wait_for(tmp_path / "beat.log", "from stderr:")
        time.sleep(0.5)
    finally:
        stop_process_group(process)
    assert_masked((tmp_path / "beat.log").read_text(errors="replace"), shaped, known)


def test_gunicorns_own_error_and_access_logs_mask_secrets(tmp_path) -> None:
    config = "deploy/gunicorn.conf.py"  # the deployment's, as its systemd unit passes it
    """gunicorn's error and access loggers do not propagate to the root logger, so Django's LOGGING
    never reaches them. A request's URL is written to the access log, and a malformed request's
    method to the error log."""
    shaped = f"sk-test-{secrets.token_hex(12)}"
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "dashboard.wsgi:application",
                "--config",
                config,
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--access-logfile",
                "-",
            ],
            cwd=REPO,
            env=subprocess_env(DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, timeout=30)
            httpx.get(f"http://127.0.0.1:{port}/login/?key={shaped}", timeout=20)
            with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
                raw.sendall(f"{shaped} / HTTP/1.1\r\n\r\n".encode())
                raw.recv(4096)
            wait_for(log_path, '"GET /login/')
            wait_for(log_path, "Invalid request")
        finally:
            stop_process_group(process)
    output = log_path.read_text(errors="replace")
    assert shaped not in output
    assert f"GET /login/?key={MASK}" in output
    assert f"Invalid HTTP method: '{MASK}'" in output
