"""Driving a server with HTTP load as browsers would: signing in through the real login form, and wrk
(Debian's package) with a Lua script that cycles through paths and counts what wrk alone does not (answers
other than 200 and 204, HX-Redirect), plus the CPU time the server's processes used meanwhile."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULT_PREFIX = "BENCH-RESULT "

# Cycles through PATHS (filled in per measurement), and counts what wrk alone does not: answers other
# than 200 and 204 (wrk counts only >= 400) and HX-Redirect answers (a lost session). done() prints every
# figure as one JSON line, latencies in microseconds.
WRK_SCRIPT = r"""
local threads = {}
local paths = {PATHS}
local next_path = 0

function request()
  next_path = next_path % #paths + 1
  return wrk.format(nil, paths[next_path])
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad_status = 0
  hx_redirect = 0
end

function response(status, headers, body)
  if status ~= 200 and status ~= 204 then
    bad_status = bad_status + 1
  end
  if headers["HX-Redirect"] ~= nil or headers["hx-redirect"] ~= nil then
    hx_redirect = hx_redirect + 1
  end
end

function done(summary, latency, requests)
  local bad, redirects = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("bad_status")
    redirects = redirects + thread:get("hx_redirect")
  end
  io.write(string.format(
    'BENCH-RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status_4xx_5xx": %d, "timeout": %d, "bad_status": %d, "hx_redirect": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, bad, redirects,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def sign_in(base: str, username: str, password: str) -> str:
    """The real login form, CSRF token and all; returns the Cookie header to send."""
    import httpx

    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        form = client.get("/login/")
        form.raise_for_status()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        if not token:
            raise RuntimeError("no CSRF token on the login page")
        answer = client.post(
            "/login/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": username,
                "password": password,
                "next": "/",
            },
            headers={"Referer": f"{base}/login/"},
        )
        if answer.status_code != 302 or "sessionid" not in client.cookies:
            raise RuntimeError(f"signing in failed: {answer.status_code} {answer.text[:300]}")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def run_wrk(
    wrk: str,
    workdir: Path,
    base: str,
    paths: list[str],
    cookie: str,
    seconds: int,
    connections: int,
    timeout: int,
    pause_ms: float = 0.0,
) -> dict:
    """wrk's figures; with `pause_ms`, each connection waits about that long (0.5 to 1.5 times, at
    random, so that connections do not move in step) after an answer before its next request, as a
    browser's poll timer does, which holds the request rate near connections / pause.

    A connection's first request goes at once: wrk would otherwise wait before it too, with the
    connection open and silent, and gunicorn's gthread worker gives a new connection a thread until
    its first request arrives, so threads sat idle on connections still pausing while requests
    queued behind them: up to a whole pause (hundreds of milliseconds) for the first request of
    every connection, 2 to 3 % of a 30 s run, which made the p99 (measured: 630 ms for a bare WSGI
    app at 200 requests/s over 160 connections, 41 ms with this). nginx, which carries browsers'
    polls in production, opens an upstream connection only with a request to send."""
    script = workdir / "bench.lua"
    text = WRK_SCRIPT.replace("{PATHS}", "{" + ", ".join(json.dumps(path) for path in paths) + "}")
    if pause_ms > 0:
        # wrk gives each of its 2 threads (-t2) connections // 2 connections, and calls delay() once
        # before each connection's first request: those calls answer 0.
        per_thread = max(1, connections // 2)
        text += (
            f"\nlocal opened = 0\nfunction delay()\n  if opened < {per_thread} then\n"
            f"    opened = opened + 1\n    return 0\n  end\n"
            f"  return math.floor({pause_ms:.3f} * (0.5 + math.random()))\nend\n"
        )
    script.write_text(text)
    url = base + paths[0]
    command = [
        wrk,
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout}s",
        "--latency",
        "-s",
        str(script),
        "-H",
        f"Cookie: {cookie}",
        "-H",
        "HX-Request: true",
        url,
    ]
    # Bounded: wrk stops itself after `seconds`; the subprocess timeout is a safety net.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + timeout + 60, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line.removeprefix(RESULT_PREFIX))
            seconds_run = result["duration_us"] / 1e6
            result["rps"] = result["requests"] / seconds_run if seconds_run else 0.0
            result["errors"] = (
                result["connect"]
                + result["read"]
                + result["write"]
                + result["timeout"]
                + result["bad_status"]
                + result["hx_redirect"]
            )
            result["wrk_output"] = done.stdout
            return result
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


def start_gunicorn(
    children: Any, workdir: Path, env: dict[str, str], port: int, workers: int, threads: int
) -> subprocess.Popen:
    """gunicorn serving the dashboard as in production (deploy/gunicorn.conf.py: gthread, reuse_port),
    on 127.0.0.1:`port`; its log in workdir/gunicorn.log. `children` is a benchlib.Children."""
    return children.start(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "dashboard.wsgi:application",
            # The rest (gthread, reuse_port) from the deployment's own configuration.
            "--config=deploy/gunicorn.conf.py",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            f"--threads={threads}",
            "--backlog=2048",
            "--log-level=warning",
            "--timeout=60",
        ],
        log=workdir / "gunicorn.log",
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
    )


def process_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (Linux /proc), to show who used the cores."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def stolen_seconds() -> float:
    """CPU time the hypervisor gave to others while this machine's cores wanted it (Linux /proc/stat,
    all cores): a virtual machine's neighbours, which make the same run slower at another moment."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def gunicorn_pids(master: int) -> list[int]:
    pids = [master]
    with contextlib.suppress(OSError):
        pids += [int(child) for child in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    return pids


def run_context(wrk: str, workdir: Path) -> dict[str, Any]:
    """What the report says about the run: machine, database and versions. Raises when gunicorn's log
    shows the cache failed (dashboard/cache.py's warning): some requests then ran without Redis, which
    production does not."""
    from importlib import metadata

    import django
    from machine import describe_database, describe_machine

    log = (workdir / "gunicorn.log").read_text(errors="replace")
    if "Cache unavailable" in log:
        raise RuntimeError(f"Redis failed during the run; the figures are not production's:\n{log[-3000:]}")
    version = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False).stdout.split()
    return {
        "machine": describe_machine(),
        "database": describe_database(),
        "django": django.get_version(),
        "gunicorn": metadata.version("gunicorn"),
        "wrk": version[1] if len(version) > 1 else "?",
        "server_log_tail": log[-4000:],
    }


def serve(
    children: Any, workdir: Path, database_url: str, workers: int, threads: int, username: str, password: str
) -> tuple[subprocess.Popen, str, str]:
    """gunicorn with production settings over `database_url` and a private Redis, on a free loopback port,
    with the benchmarks' ceiling URLs; returns the server process, its base URL and a signed-in cookie."""
    import benchlib

    port = benchlib.free_port()
    base = f"http://127.0.0.1:{port}"
    env = benchlib.production_env(
        database_url,
        benchlib.start_redis(),
        DJANGO_SETTINGS_MODULE="ceiling_settings",
        PYTHONPATH=os.pathsep.join([str(benchlib.HERE), str(benchlib.REPO)]),
    )
    gunicorn = start_gunicorn(children, workdir, env, port, workers, threads)
    benchlib.wait_for_port(port, process=gunicorn)
    return gunicorn, base, sign_in(base, username, password)
