"""How fast does a full sync mirror 10,000 batches, compared with the official SDK merely listing them?

    DJANGO_DEBUG=1 uv run python benchmarks/bench_sync.py [--batches 10000] [--repeat 3]
        [--warmup 1] [--database-url URL] [--json PATH] [--profile]

Run on demand; it is not part of the test suite. It starts the API simulator in a thread of this
process (SimWorld(seed=1, batches=N, speed=0): a frozen clock, so every round sees the same data),
migrates a fresh SQLite database in a temporary directory (never var/db.sqlite3) unless
--database-url names another one, and times, interleaved round by round (the order rotates):

  full sync, empty DB   sync.full_sync(connection, complete=True) after deleting every batch row
  SDK list              sum(1 for _ in openai.OpenAI(...).batches.list(limit=100))
  our list              BatchAPIClient.iter_batches(limit=100): the same walk, no database
  second full sync      sync.full_sync(connection, complete=False) over the unchanged database
  refresh_active        sync.refresh_active(connection) over the unchanged database

with their API calls and SQL statements. Memory is measured apart from the timings, each operation
once in a fresh child process of its own (with the simulator left in this one): the growth of peak
RSS over the RSS before the operation (on Linux the high-water mark is reset first and read from
VmHWM; elsewhere it is the growth of resource's ru_maxrss), and, in a second child, the peak of the
traced Python heap (tracemalloc, which slows Python down too much to run while timing).

The headline figure is median(full sync) / median(SDK list); the goal is <= 1.5. Nothing about
speed is asserted: the script prints, and with --json writes, the figures.

Django runs with DEBUG off whatever DJANGO_DEBUG says (DJANGO_DEBUG=1 only spares a secret key):
with DEBUG on, Django keeps every SQL statement, which production does not pay for. Redis is
production's too: a private redis-server on loopback (benchlib.start_redis) that REDIS_URL and
DASHBOARD_CACHE_REDIS_URL point at, for this process and the memory probes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchlib
import memory
from machine import describe_database, describe_machine, describe_software
from sync_report import FULL_SYNC, LABELS, OUR_LIST, REFRESH, RESYNC, SDK_LIST, print_report

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "BENCH_SIMULATOR_API_KEY"
KEY = "sk-bench-simulator"
CONNECTION_NAME = "benchmark-simulator"
GOAL = 1.5
SEED = 1
PAGE_LIMIT = 100
PROBE_PREFIX = "PROBE-RESULT "


# --- arguments and Django ----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=10_000, help="simulated batches (default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument(
        "--database-url",
        help="database to use instead of a fresh temporary SQLite file; it must hold no batches "
        "(every batch row in it is deleted before each round)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, cProfile one full sync into the empty database and print the hotspots",
    )
    parser.add_argument("--profile-top", type=int, default=25, help="rows per profile listing")
    # Used by this script to run one memory probe in a child process.
    parser.add_argument("--probe", choices=sorted(LABELS), help=argparse.SUPPRESS)
    parser.add_argument("--probe-mode", choices=("rss", "heap"), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batches < 1 or args.repeat < 1 or args.warmup < 0:
        parser.error("--batches and --repeat must be >= 1, --warmup >= 0")
    return args


def setup_django(database_url: str, *, migrate: bool = True) -> None:
    benchlib.setup_django(database_url, migrate=migrate)
    # The SDK's transport (httpx2 in recent releases) logs every request at INFO, which the
    # project's logging settings do not quieten; keep the report readable.
    for name in ("httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)


def connection_for(base_url: str):
    from batches.models import Batch, Connection

    os.environ[KEY_ENV] = KEY
    if Batch.objects.exclude(connection__name=CONNECTION_NAME).exists():
        sys.exit(
            "refusing to run: the database holds batches of other connections, and the benchmark "
            "deletes every batch row before each round; give it an empty database"
        )
    connection, _ = Connection.objects.update_or_create(
        name=CONNECTION_NAME,
        defaults={"base_url": base_url, "api_key_env": KEY_ENV, "enabled": False},
    )
    return connection


def _dependents_first(model, seen: set | None = None) -> list:
    """`model` and every model whose rows hang off it (by a foreign key, at any depth), the
    dependents before what they depend on."""
    seen = set() if seen is None else seen
    seen.add(model)
    order = []
    for relation in model._meta.related_objects:
        if relation.related_model not in seen and not relation.many_to_many:
            order += _dependents_first(relation.related_model, seen)
    return [*order, model]


def clear_batches() -> None:
    """Empty the mirror: the batches, their status changes and snapshots, and whatever else hangs off
    a batch (cancel requests, ...). Plain DELETEs, dependents first, and only for tables that exist,
    so that a model whose migration is not written yet does not stop the benchmark."""
    from django.db import connection as db

    from batches.models import Batch

    tables = set(db.introspection.table_names())
    with db.cursor() as cursor:
        for model in _dependents_first(Batch):
            if model._meta.db_table in tables:
                cursor.execute(f"DELETE FROM {db.ops.quote_name(model._meta.db_table)}")
    if db.vendor == "sqlite":
        # Give back the freed pages and empty the WAL, so that every round writes into the state a
        # brand-new database would be in.
        with db.cursor() as cursor:
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def row_counts() -> dict[str, int]:
    from batches.models import Batch, BatchStatusChange, ProgressSnapshot

    return {
        "batches": Batch.objects.count(),
        "status_changes": BatchStatusChange.objects.count(),
        "snapshots": ProgressSnapshot.objects.count(),
    }


# --- the operations ------------------------------------------------------------------------------

# Each returns the API calls it made and a few details worth keeping.
Outcome = tuple[int, dict[str, Any]]


class Bench:
    def __init__(self, connection, base_url: str, batches: int) -> None:
        self.connection = connection
        self.base_url = base_url
        self.batches = batches

    def run(self, key: str) -> Outcome:
        return {
            FULL_SYNC: self.full_sync,
            SDK_LIST: self.sdk_list,
            OUR_LIST: self.our_list,
            RESYNC: self.resync,
            REFRESH: self.refresh,
        }[key]()

    def full_sync(self) -> Outcome:
        from batches import sync

        result = sync.full_sync(self.connection, complete=True)
        if result.created != self.batches:
            sys.exit(f"full sync created {result.created} batches, expected {self.batches}")
        return result.api_calls, {"pages": result.pages, "created": result.created}

    def resync(self) -> Outcome:
        from batches import sync

        return self._sync_outcome(sync.full_sync(self.connection, complete=False))

    def refresh(self) -> Outcome:
        from batches import sync

        return self._sync_outcome(sync.refresh_active(self.connection))

    @staticmethod
    def _sync_outcome(result) -> Outcome:
        return result.api_calls, {
            "pages": result.pages,
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
        }

    def sdk_list(self) -> Outcome:
        import openai

        requests = 0

        def count(_request) -> None:
            nonlocal requests
            requests += 1

        # DefaultHttpxClient keeps the SDK's own timeouts and pool limits; the hook only counts.
        http_client = openai.DefaultHttpxClient(event_hooks={"request": [count]})
        with openai.OpenAI(api_key=KEY, base_url=self.base_url, http_client=http_client) as client:
            listed = sum(1 for _ in client.batches.list(limit=PAGE_LIMIT))
        if listed != self.batches:
            sys.exit(f"the SDK listed {listed} batches, expected {self.batches}")
        return requests, {"listed": listed}

    def our_list(self) -> Outcome:
        from batches.connections import client_for

        with client_for(self.connection) as client:
            listed = sum(1 for _ in client.iter_batches(limit=PAGE_LIMIT))
            calls = client.calls
        if listed != self.batches:
            sys.exit(f"iter_batches listed {listed} batches, expected {self.batches}")
        return calls, {"listed": listed}


# --- timing --------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    api_calls: int
    queries: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Measurement:
    key: str
    runs: list[Run] = field(default_factory=list)
    rss_growth_kib: int | None = None
    heap_peak_bytes: int | None = None

    @property
    def seconds(self) -> list[float]:
        return [run.seconds for run in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min(self) -> float:
        return min(self.seconds)

    def median_of(self, name: str) -> float:
        return statistics.median(getattr(run, name) for run in self.runs)


def timed(operation: Callable[[], Outcome]) -> Run:
    from django.db import connection as db

    gc.collect()
    counter = benchlib.QueryCounter()
    with db.execute_wrapper(counter):
        started = time.perf_counter()
        api_calls, detail = operation()
        seconds = time.perf_counter() - started
    return Run(seconds, api_calls, counter.count, detail)


def run_round(bench: Bench, results: dict[str, Measurement] | None, index: int) -> None:
    """One round of every measurement; the order of its three groups rotates from round to round."""

    def record(key: str, run: Run) -> None:
        if results is not None:
            results[key].runs.append(run)

    def sync_group() -> None:
        clear_batches()
        run = timed(bench.full_sync)
        run.detail["rows"] = row_counts()
        record(FULL_SYNC, run)
        record(RESYNC, timed(bench.resync))
        record(REFRESH, timed(bench.refresh))

    groups = [
        sync_group,
        lambda: record(SDK_LIST, timed(bench.sdk_list)),
        lambda: record(OUR_LIST, timed(bench.our_list)),
    ]
    shift = index % len(groups)
    for group in groups[shift:] + groups[:shift]:
        group()


# --- memory, each operation in a fresh process ---------------------------------------------------


def probe(args: argparse.Namespace) -> int:
    """Child process: run one operation once and print what it cost in memory."""
    setup_django(args.database_url, migrate=False)
    import openai  # noqa: F401  (everything the operations import is loaded before measuring)

    from batches import sync  # noqa: F401

    bench = Bench(connection_for(args.base_url), args.base_url, args.batches)
    gc.collect()
    if args.probe_mode == "heap":
        tracemalloc.start()
        baseline, _ = tracemalloc.get_traced_memory()
        bench.run(args.probe)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        figures: dict[str, int | str] = {"heap_peak_bytes": peak - baseline}
    else:
        _, figures = memory.rss_growth(lambda: bench.run(args.probe))
    print(PROBE_PREFIX + json.dumps(figures), flush=True)
    return 0


def run_probe(args: argparse.Namespace, url: str, base_url: str, key: str, mode: str) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--batches={args.batches}",
        f"--database-url={url}",
        f"--base-url={base_url}",
        f"--probe={key}",
        f"--probe-mode={mode}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # same cwd: same database
    for line in done.stdout.splitlines():
        if line.startswith(PROBE_PREFIX):
            return json.loads(line.removeprefix(PROBE_PREFIX))
    raise RuntimeError(f"memory probe {key}/{mode} failed:\n{done.stdout}\n{done.stderr}")


def measure_memory(args, url: str, base_url: str, results: dict[str, Measurement]) -> None:
    for mode in ("rss", "heap"):
        # In this order each probe finds the database as its timed counterpart did.
        for key in (FULL_SYNC, RESYNC, REFRESH, SDK_LIST, OUR_LIST):
            if key == FULL_SYNC:
                clear_batches()
            figures = run_probe(args, url, base_url, key, mode)
            if mode == "rss":
                results[key].rss_growth_kib = figures["rss_growth_kib"]
            else:
                results[key].heap_peak_bytes = figures["heap_peak_bytes"]


# --- profiling -----------------------------------------------------------------------------------


def profile_full_sync(bench: Bench, top: int) -> str:
    clear_batches()
    profiler = cProfile.Profile()
    profiler.enable()
    bench.full_sync()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write("\n=== cProfile of one full sync into the empty database, by own time ===\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write("\n=== ... by cumulative time ===\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --- reporting -----------------------------------------------------------------------------------


def figures(args: argparse.Namespace, results: dict[str, Measurement], context: dict[str, Any]):
    sync_median, sdk_median = results[FULL_SYNC].median, results[SDK_LIST].median
    ratio = sync_median / sdk_median
    measurements = {}
    for key, measurement in results.items():
        measurements[key] = {
            "label": LABELS[key],
            "seconds": measurement.seconds,
            "median_s": measurement.median,
            "min_s": measurement.min,
            "per_batch_us": measurement.median / args.batches * 1e6,
            "api_calls": measurement.median_of("api_calls"),
            "db_queries": measurement.median_of("queries"),
            "rss_growth_kib": measurement.rss_growth_kib,
            "heap_peak_bytes": measurement.heap_peak_bytes,
            "runs": [
                {"seconds": run.seconds, "api_calls": run.api_calls, "db_queries": run.queries, **run.detail}
                for run in measurement.runs
            ],
        }
    return {
        "benchmark": "sync",
        "batches": args.batches,
        "repeat": args.repeat,
        "warmup": args.warmup,
        "simulator": {"seed": SEED, "speed": 0, "in_process_thread": True},
        **context,
        "measurements": measurements,
        "headline": {
            "name": "full sync / SDK list",
            "ratio": ratio,
            "ratio_of_mins": results[FULL_SYNC].min / results[SDK_LIST].min,
            # Both are timed within each round, so the spread of these shows how noisy the machine was.
            "ratio_per_round": [
                sync / sdk
                for sync, sdk in zip(results[FULL_SYNC].seconds, results[SDK_LIST].seconds, strict=True)
            ],
            "goal": GOAL,
            "met": ratio <= GOAL,
            "listing_share_of_sync": results[OUR_LIST].median / sync_median,
        },
    }


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.probe:
        return probe(args)
    with benchlib.temporary_sqlite(args.database_url, "bench-sync-") as url:
        setup_django(url)
        import openai  # noqa: F401  (imported before any timing: the SDK takes a while to import)

        from simulator import SimWorld, start_in_thread, stop

        started = time.perf_counter()
        world = SimWorld(seed=SEED, batches=args.batches, speed=0)
        server, base_url = start_in_thread(world)
        print(f"simulator with {args.batches:,} batches ready in {time.perf_counter() - started:.2f} s")
        try:
            bench = Bench(connection_for(base_url), base_url, args.batches)
            results = {key: Measurement(key) for key in LABELS}
            for index in range(args.warmup):
                print(f"warm-up round {index + 1}/{args.warmup} ...", flush=True)
                run_round(bench, None, index)
            for index in range(args.repeat):
                print(f"round {index + 1}/{args.repeat} ...", flush=True)
                run_round(bench, results, index)
            if not args.no_memory:
                print("memory, each operation in a fresh process ...", flush=True)
                measure_memory(args, url, base_url, results)
            context = {
                "machine": describe_machine(),
                "software": describe_software(),
                "database": describe_database(),
            }
            data = figures(args, results, context)
            print_report(data)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(data, indent=2) + "\n")
                print(f"\nfigures written to {args.json}")
            if args.profile:
                print(profile_full_sync(bench, args.profile_top))
        finally:
            stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
