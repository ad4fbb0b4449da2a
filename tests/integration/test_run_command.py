"""`make run`'s command: everything starts, answers, and stops on Ctrl-C leaving nothing behind."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port


def descendants(pid: int) -> set[int]:
    children: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.add(int(entry))
    for child in list(children):
        children |= descendants(child)
    return children


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_it_answers_on_the_printed_url_and_ctrl_c_leaves_no_process_behind(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_URL"))}
    env.update(
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing answers: a private Redis starts
        PYTHONUNBUFFERED="1",
    )
    log = (tmp_path / "run.log").open("w+")
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_dashboard",
            "--port",
            str(free_port()),
            "--simulated-batches",
            "20",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = None
        while time.monotonic() - started < 60 and url is None:
            match = re.search(r"Dashboard: (http://\S+)", (tmp_path / "run.log").read_text())
            url = match.group(1) if match else None
            time.sleep(0.2)
        assert url, "no URL printed:\n" + (tmp_path / "run.log").read_text()
        # Its own database file is not the local default: no demo login, and it says how to make one.
        printed = (tmp_path / "run.log").read_text()
        assert "create_user NAME --role admin" in printed
        assert "demo-batches" not in printed
        while time.monotonic() - started < 60:
            try:
                if httpx.get(url + "login/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("the dashboard did not answer within 60 s:\n" + (tmp_path / "run.log").read_text())
        children = descendants(process.pid)
        joined = b"\n".join(Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children)
        for expected in (b"redis-server", b"celery", b"simulate_api", b"runserver", b"gunicorn_events"):
            assert expected in joined
        # The events server (push) answers on the printed URL, and refuses anyone signed out.
        events = re.search(r"Push: +(http://\S+)", printed)
        assert events, printed
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(events.group(1) + "?w=all", timeout=5).status_code == 403
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the events server did not answer within 30 s"
                time.sleep(0.3)
        # The simulator sends its webhooks to the dashboard's endpoint for the environment's connection
        # (the secret travels in the environment, never on a command line).
        assert f"--webhook-url\x00{url}webhooks/openai/default/".encode() in joined
        assert b"whsec_" not in joined
        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(pid) for pid in children):
            time.sleep(0.2)
        assert [pid for pid in children if alive(pid)] == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
