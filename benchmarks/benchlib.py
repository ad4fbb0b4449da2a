"""What the page and load benchmarks share: Django set-up, a private Redis as production's shared cache,
percentiles, free ports, child processes that are always
cleaned up, and the machine description.

Not a benchmark itself (run_all.py only runs bench_*.py). The machine and database descriptions are
machine.py's, so that every figure in docs/benchmarks.md describes the machine the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import describe_database, describe_machine  # noqa: F401  (re-exported)

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

# --- Django ----------------------------------------------------------------------------------------


def setup_django(
    database_url: str, *, migrate: bool = True, settings_module: str = "dashboard.settings"
) -> None:
    """Django against `database_url` and a private Redis (start_redis), DEBUG off whatever DJANGO_DEBUG
    says (with DEBUG on, every SQL statement is kept in memory, which production does not pay for)."""
    for path in (str(REPO), str(HERE)):
        if path not in sys.path:
            sys.path.insert(0, path)
    start_redis()  # before django.setup(): the settings read REDIS_URL and DASHBOARD_CACHE_REDIS_URL
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_DEBUG", "1")  # only so that settings need no secret key
    # The benchmark's connection is the simulator on loopback, an internal address.
    os.environ.setdefault("DASHBOARD_ALLOW_INTERNAL_API_URLS", "1")
    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False
    check_cache()
    # django-axes logs every sign-in at INFO; the benchmarks sign in on purpose.
    logging.getLogger("axes").setLevel(logging.WARNING)
    default_db = (REPO / "var" / "db.sqlite3").resolve()
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3") and Path(db["NAME"]).resolve() == default_db:
        sys.exit(f"refusing to benchmark against {default_db}: give --database-url another database")
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


@contextlib.contextmanager
def temporary_sqlite(url: str | None, prefix: str) -> Iterator[str]:
    """`url` as given, or a fresh SQLite file in a temporary directory removed afterwards."""
    if url:
        yield url
        return
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        yield f"sqlite:///{Path(workdir) / 'bench.sqlite3'}"
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        shutil.rmtree(workdir, ignore_errors=True)


# --- statistics -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` quantile (0..1), linear between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


class QueryCounter:
    """A connection.execute_wrapper that counts the SQL statements run inside it."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: Any, params: Any, many: Any, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


# --- processes and ports ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process meant to listen on {port} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def production_env(database_url: str, redis: dict[str, str], **settings: str) -> dict[str, str]:
    """The environment of a dashboard process started by a benchmark, as in production but on loopback:
    none of the caller's own settings, DEBUG off with a fresh secret key, plain HTTP on 127.0.0.1 (no
    HTTPS redirect, no secure cookies), no sign-in rate limit (the benchmarks sign in on purpose), the
    private Redis (start_redis); `settings` on top."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DASHBOARD_", "OPENAI_", "SYNC_", "ALERTS_", "CELERY_"))
    }
    env.update(
        **redis,
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SSL_REDIRECT="0",
        DJANGO_SECURE_COOKIES="0",
        DASHBOARD_LOGIN_RATE_LIMIT="0",
        DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


class Children:
    """Child processes, each in a session of its own, stopped (TERM, then KILL) in reverse order on
    close, on SIGTERM/SIGINT, and at interpreter exit: a benchmark never leaves one behind."""

    def __init__(self) -> None:
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self._closed = False
        import atexit

        atexit.register(self.close)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, _frame) -> None:
        self.close()
        raise SystemExit(128 + signum)

    def start(self, name: str, command: list[str], *, log: Path, **kwargs: Any) -> subprocess.Popen:
        handle = log.open("wb")
        try:
            process = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
            )
        finally:
            handle.close()  # the child holds its own descriptor
        self.processes.append((name, process))
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 15.0) -> None:
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for _name, process in reversed(self.processes):
            with contextlib.suppress(Exception):
                self.stop(process)


# --- Redis, production's shared cache -----------------------------------------------------------------

# Set by the process that started the private Redis; its child processes (memory probes) find it here.
PRIVATE_REDIS_ENV = "BENCH_PRIVATE_REDIS_URL"
_redis_children: Children | None = None


def start_redis() -> dict[str, str]:
    """A redis-server of this benchmark's own on a free loopback port, without persistence, stopped
    when the benchmark ends (however it ends), and the environment pointed at it: REDIS_URL (database
    0: Celery's queues, the sync locks) and DASHBOARD_CACHE_REDIS_URL (database 1: Django's cache), as
    deploy/env.example splits them. Returns those two variables, for the environment of servers the
    benchmark starts.

    Production's cache is Redis (dashboard/cache.py); a benchmark without one would not fail but
    measure a cache that always misses (the cache degrades while Redis is unreachable), and one that
    found somebody else's Redis on the default port would share and clear their data. Call it before
    django.setup() (setup_django does). Idempotent: a second call, or a child process of a benchmark
    that called it, uses the same server."""
    global _redis_children
    url = os.environ.get(PRIVATE_REDIS_ENV)
    if not url:
        binary = ensure_debian_package("redis-server", "redis-server")
        workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        import atexit

        # Registered before Children registers its own clean-up, so it runs after it (atexit runs
        # handlers last in, first out): the server stops, then its directory goes.
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        port = free_port()
        _redis_children = Children()
        process = _redis_children.start(
            "redis",
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
            log=workdir / "redis.log",
        )
        wait_for_port(port, process=process)
        url = f"redis://127.0.0.1:{port}"
        os.environ[PRIVATE_REDIS_ENV] = url
    variables = {"REDIS_URL": f"{url}/0", "DASHBOARD_CACHE_REDIS_URL": f"{url}/1"}
    os.environ.update(variables)
    return variables


def check_cache() -> None:
    """Stop the benchmark unless Django's cache reaches the private Redis: a cache that silently misses
    would make every figure wrong."""
    from django.conf import settings
    from django.core.cache import cache

    location = settings.CACHES["default"]["LOCATION"]
    if location != os.environ.get("DASHBOARD_CACHE_REDIS_URL"):
        sys.exit("Django's cache is not on the benchmark's Redis: call benchlib.start_redis() first")
    key = f"bench-check-{os.getpid()}"
    cache.set(key, "ok", 30)
    if cache.get(key) != "ok":
        sys.exit("Django's cache does not answer (is redis-server running?): the figures would be wrong")
    cache.delete(key)


def cache_keys(pattern: str = "*") -> int:
    """How many keys matching `pattern` the cache's Redis database holds: proof that the servers a
    benchmark started (gunicorn, runserver) use the private Redis and not a cache that misses."""
    import redis

    client = redis.Redis.from_url(os.environ["DASHBOARD_CACHE_REDIS_URL"])
    try:
        return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def ensure_debian_package(command: str, package: str) -> str:
    """The path of `command`, installing Debian's `package` first when it is missing."""
    found = shutil.which(command) or (f"/usr/bin/{command}" if Path(f"/usr/bin/{command}").exists() else None)
    if found:
        return found
    if not shutil.which("apt-get"):
        sys.exit(f"{command} is missing and there is no apt-get to install {package} with")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"Installing {package} from the system packages ...", flush=True)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", package], check=True, env=env)
    found = shutil.which(command) or f"/usr/bin/{command}"
    if not Path(found).exists():
        sys.exit(f"installing {package} did not provide {command}")
    return found


# --- output -----------------------------------------------------------------------------------------------


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"\nfigures written to {path}")


def machine_line(machine: dict[str, Any]) -> str:
    return f"{machine['cpu']}, {machine['cores']} cores, {machine['memory'] or '?'} RAM, {machine['os']}"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 1000 else f"{value:,.0f} ms"


def print_table(columns: Sequence[Any], rows: Sequence[Sequence[Any]]) -> None:
    """The first column left-aligned, the figures right-aligned, a rule under the header."""
    widths = [max(len(str(row[i])) for row in [columns, *rows]) + 2 for i in range(len(columns))]
    for line in [columns, None, *rows]:
        if line is None:
            print("-" * sum(widths))
            continue
        print(
            "".join(
                (f"{c:<{w}}" if i == 0 else f"{c:>{w}}")
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )


def print_report(data: dict[str, Any], *, header: Sequence[str] = (), extra: Sequence[str] = ()) -> None:
    """A benchmark's figures as every bench_*.py prints them: title, machine (and `header` lines), the
    table, the notes (and `extra` lines), the headline last."""
    print()
    print(data["title"])
    print(f"machine:   {machine_line(data['machine'])}")
    for line in header:
        print(line)
    print()
    print_table(data["table"]["columns"], data["table"]["rows"])
    print()
    for note in data["notes"]:
        print(note)
    for line in extra:
        print(line)
    print(f"\nHEADLINE  {data['headline']['text']}")
