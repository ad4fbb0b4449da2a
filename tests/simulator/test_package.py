"""The simulator is a package of its own: it imports no Django and nothing from the project's apps,
and runs as `python -m simulator` as well as through `manage.py simulate_api`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai

REPO = Path(__file__).resolve().parents[2]

# Imports every module of the package in a fresh interpreter and names what else got imported.
_IMPORT_ALL = """
import json, pkgutil, importlib, sys
import simulator
for module in pkgutil.walk_packages(simulator.__path__, "simulator."):
    importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_every_module_of_the_simulator_imports_no_django_and_no_app() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout)
    assert "simulator.cli" in modules and "simulator.server" in modules
    foreign = [
        name
        for name in modules
        if name.split(".")[0] in ("django", "batches", "dashboard", "accounts", "alerts")
    ]
    assert foreign == []


@contextlib.contextmanager
def _serving(command: list[str], env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The simulator as a process and the base URL it printed; killed if a test leaves it running."""
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = process.stdout, process.stderr
    try:
        first_line: list[str] = []
        reader = threading.Thread(target=lambda: first_line.append(stdout.readline()))
        reader.start()
        reader.join(timeout=20)
        assert first_line and first_line[0].startswith("http://127.0.0.1:"), stderr.read()
        base_url = first_line[0].strip()
        assert base_url.endswith("/v1")
        yield base_url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _stops_cleanly_on_sigterm(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert process.stderr is not None and "Traceback" not in process.stderr.read()


def test_the_command_serves_until_sigterm_and_exits_cleanly() -> None:
    command = [sys.executable, "manage.py", "simulate_api", "--port", "0", "--batches", "300", "--seed", "1"]
    with _serving(command, {**os.environ, "DJANGO_DEBUG": "1"}) as (base_url, process):
        client = openai.OpenAI(api_key="sk-test", base_url=base_url)
        ids = [b.id for b in client.batches.list(limit=100)]
        assert len(ids) == 300 and len(set(ids)) == 300
        client.close()
        _stops_cleanly_on_sigterm(process)


def test_python_m_simulator_serves_until_sigterm_and_exits_cleanly() -> None:
    command = [sys.executable, "-m", "simulator", "--port", "0", "--batches", "20", "--speed", "0"]
    with _serving(command, dict(os.environ)) as (base_url, process):
        page = httpx.get(f"{base_url}/batches?limit=100", headers={"Authorization": "Bearer sk-test"})
        assert page.status_code == 200 and len(page.json()["data"]) == 20
        _stops_cleanly_on_sigterm(process)


def test_python_m_simulator_refuses_options_it_cannot_run_with() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--batches", "-1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "simulator: --batches must be >= 0\n"
