"""What the page and load benchmarks share: Django set-up, a private Redis as production's shared cache,
a fast realistic fill of the batch table, percentiles, free ports, child processes that are always
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
import random
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
from datetime import UTC, datetime, timedelta
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


# --- a realistic batch table -------------------------------------------------------------------------

# The simulator's spread (simulator/README.md): about 46 % completed, 18 % in_progress, ...
STATUS_WEIGHTS = (
    ("completed", 46),
    ("in_progress", 18),
    ("failed", 8),
    ("cancelled", 7),
    ("finalizing", 6),
    ("validating", 5),
    ("expired", 5),
    ("cancelling", 5),
)
ENDPOINTS = (
    ("/v1/chat/completions", 50),
    ("/v1/responses", 20),
    ("/v1/embeddings", 20),
    ("/v1/completions", 5),
    ("/v1/moderations", 5),
)
CHAT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini", "o4-mini")
EMBEDDING_MODELS = ("text-embedding-3-small", "text-embedding-3-large")
PROJECTS = tuple(
    f"project-{name}" for name in ("alpha", "beta", "gamma", "delta", "evals", "search", "ranking")
)
OWNERS = ("ana", "ben", "chen", "dara", "eli", "fay", "gus", "hana", "ivan", "jo", "kai", "lea", "mo", "nia")
# Connections and their share of the batches.
CONNECTIONS = (("prod-eu", 50), ("prod-us", 30), ("research", 20))


def _weighted(rng: random.Random, table: Sequence[tuple[Any, int]]) -> Any:
    return rng.choices([value for value, _ in table], weights=[weight for _, weight in table])[0]


def _unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def make_connections(now: datetime) -> list:
    """The benchmark's connections (and the environment one, which a migration creates, disabled)."""
    from batches.models import Connection

    Connection.objects.filter(from_environment=True).update(enabled=False)
    connections = []
    for name, _ in CONNECTIONS:
        connection, _ = Connection.objects.update_or_create(
            name=name,
            defaults={
                "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "BENCH_UNUSED_API_KEY",
                "enabled": True,
                "last_success_at": now - timedelta(seconds=5),
                "last_complete_walk_at": now - timedelta(minutes=2),
                "next_refresh_at": now + timedelta(seconds=10),
                "next_full_sync_at": now + timedelta(minutes=3),
            },
        )
        connections.append(connection)
    return connections


def _batch(rng: random.Random, number: int, connection, now: datetime):
    """One batch as the sync would have stored it, with an API-shaped raw JSON."""
    from batches.models import Batch
    from batches.statuses import TERMINAL_STATUSES

    status = _weighted(rng, STATUS_WEIGHTS)
    endpoint = _weighted(rng, ENDPOINTS)
    model = rng.choice(EMBEDDING_MODELS if endpoint == "/v1/embeddings" else CHAT_MODELS)
    terminal = status in TERMINAL_STATUSES
    # Active batches are from the last day; finished ones spread over the last 30 days.
    age = timedelta(seconds=rng.uniform(60, 86_000 if not terminal else 30 * 86_400))
    created = now - age
    total = 0 if status == "validating" else int(math.exp(rng.uniform(math.log(5), math.log(50_000))))
    completed = failed = 0
    in_progress_at = finalizing_at = completed_at = failed_at = expired_at = cancelling_at = cancelled_at = (
        None
    )
    run_start = created + timedelta(seconds=rng.uniform(5, 600))
    if status == "failed":
        total, failed_at = 0, run_start
    elif status != "validating":
        in_progress_at = run_start
        if status in ("completed", "finalizing"):
            failed = int(total * rng.uniform(0, 0.02))
            completed = total - failed
        else:
            done = int(total * rng.uniform(0.02, 0.98))
            failed = int(done * rng.uniform(0, 0.03))
            completed = done - failed
        span = max((now - run_start).total_seconds(), 1)
        end = run_start + timedelta(seconds=span * rng.uniform(0.2, 0.95))
        if status == "completed":
            finalizing_at, completed_at = end, end + timedelta(seconds=rng.uniform(5, 300))
        elif status == "finalizing":
            finalizing_at = end
        elif status == "expired":
            expired_at = created + timedelta(hours=24) if now - created > timedelta(hours=24) else end
        elif status == "cancelling":
            cancelling_at = end
        elif status == "cancelled":
            cancelling_at, cancelled_at = end, end + timedelta(seconds=rng.uniform(5, 600))
    metadata = None
    if rng.random() < 0.85:
        metadata = {
            "project": rng.choice(PROJECTS),
            "owner": rng.choice(OWNERS),
            "run": f"run-{number % 997}",
        }
    batch_id = f"batch_{number:08x}{rng.getrandbits(64):016x}"
    input_file = f"file-in{rng.getrandbits(48):012x}"
    output_file = f"file-out{rng.getrandbits(48):012x}" if completed else ""
    error_file = f"file-err{rng.getrandbits(48):012x}" if failed else ""
    errors = (
        [{"code": "invalid_request", "line": 1, "message": "Model not found", "param": "body.model"}]
        if status == "failed"
        else []
    )
    done = completed + failed
    tokens: dict[str, Any] | None = None
    if done:
        input_tokens = done * rng.randint(50, 900)
        output_tokens = 0 if endpoint == "/v1/embeddings" else done * rng.randint(20, 400)
        tokens = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": input_tokens // 10},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }
    synced = now - timedelta(seconds=rng.uniform(1, 15) if not terminal else rng.uniform(60, 3600))
    last_progress = None
    rate = eta = None
    if status == "in_progress" and done:
        last_progress = now - timedelta(seconds=rng.uniform(1, 120))
        minutes = max((last_progress - run_start).total_seconds() / 60, 0.1)
        rate = done / minutes
        eta = now + timedelta(minutes=(total - done) / rate) if rate else None
    expires = created + timedelta(hours=24)
    raw = {
        "id": batch_id,
        "object": "batch",
        "endpoint": endpoint,
        "model": model,
        "errors": {"object": "list", "data": errors} if errors else None,
        "input_file_id": input_file,
        "completion_window": "24h",
        "status": status,
        "output_file_id": output_file or None,
        "error_file_id": error_file or None,
        "created_at": _unix(created),
        "in_progress_at": _unix(in_progress_at),
        "expires_at": _unix(expires),
        "finalizing_at": _unix(finalizing_at),
        "completed_at": _unix(completed_at),
        "failed_at": _unix(failed_at),
        "expired_at": _unix(expired_at),
        "cancelling_at": _unix(cancelling_at),
        "cancelled_at": _unix(cancelled_at),
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "usage": tokens,
        "metadata": metadata,
    }
    return Batch(
        connection=connection,
        batch_id=batch_id,
        status=status,
        is_terminal=terminal,
        endpoint=endpoint,
        model=model,
        completion_window="24h",
        input_file_id=input_file,
        output_file_id=output_file,
        error_file_id=error_file,
        created_at=created,
        in_progress_at=in_progress_at,
        expires_at=expires,
        finalizing_at=finalizing_at,
        completed_at=completed_at,
        failed_at=failed_at,
        expired_at=expired_at,
        cancelling_at=cancelling_at,
        cancelled_at=cancelled_at,
        total_requests=total,
        completed_requests=completed,
        failed_requests=failed,
        input_tokens=tokens["input_tokens"] if tokens else None,
        cached_tokens=tokens["input_tokens_details"]["cached_tokens"] if tokens else None,
        output_tokens=tokens["output_tokens"] if tokens else None,
        reasoning_tokens=0 if tokens else None,
        total_tokens=tokens["total_tokens"] if tokens else None,
        done_ratio=done / total if total else 0.0,
        last_progress_at=last_progress,
        rate_per_minute=rate,
        eta_at=eta,
        metadata=metadata,
        errors=errors,
        problems=[],
        raw=raw,
        observed_at=synced,
        first_seen_at=created + timedelta(seconds=rng.uniform(1, 30)),
        last_synced_at=synced,
        last_changed_at=synced - timedelta(seconds=rng.uniform(0, 600)),
        listed=True,
    )


def fill_batches(count: int, *, seed: int = 1, chunk: int = 5_000, progress: bool = False) -> dict[str, Any]:
    """`count` batches over the benchmark's connections, written with bulk_create in chunks of
    `chunk` rows (one transaction each). Returns how long it took and what was written."""
    from django.db import transaction

    from batches.models import Batch

    rng = random.Random(seed)
    now = datetime.now(UTC)
    connections = make_connections(now)
    weights = [weight for _, weight in CONNECTIONS]
    started = time.perf_counter()
    written = 0
    while written < count:
        size = min(chunk, count - written)
        rows = [
            _batch(rng, written + index, rng.choices(connections, weights=weights)[0], now)
            for index in range(size)
        ]
        with transaction.atomic():
            Batch.objects.bulk_create(rows, batch_size=chunk)
        written += size
        if progress and (written % 20_000 == 0 or written == count):
            print(f"  {written:,} batches written ({time.perf_counter() - started:.1f} s)", flush=True)
    seconds = time.perf_counter() - started
    return {"batches": count, "connections": len(connections), "seconds": seconds, "seed": seed}


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
