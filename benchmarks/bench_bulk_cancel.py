"""Bulk cancel of 1,000 batches on the simulator, through a real Celery worker on a real Redis, against
the same 1,000 cancels sent straight to the simulator with httpx in a loop.

    DJANGO_DEBUG=1 uv run python benchmarks/bench_bulk_cancel.py [--cancels 1000] [--rounds 3]
        [--timeout 600] [--json PATH]

Each round, two fresh simulators in threads of this process hold the same seeded world
(SimWorld(seed=1), a frozen clock), sized so that at least --cancels of its batches can be cancelled
(validating or in_progress):

  baseline   httpx.Client (keep-alive, the API key) POSTs /v1/batches/{id}/cancel for each chosen
             batch, one after another: the bare cost of the API calls, with nothing recorded.
  bulk       the dashboard: a fresh SQLite database (WAL, as dashboard.settings configures), filled by
             one full sync of the other simulator; services_bulk.start_bulk_cancel (the service the
             confirmation's POST calls) records the request and its items and enqueues the task on a
             private redis-server; a Celery worker (prefork, concurrency 2, production settings) runs
             it: items claimed 50 at a time (compare-and-set), the cancel through the API client, and
             per 25 batches one transaction with each item's answer, CancelRequest and audit event.
             Timed from the call to the moment the request is marked finished in the database
             (polled every 20 ms).

Then the simulator's own request count (GET /_sim/requests) shows how many cancel requests each batch
received and with which status: the goal is that the bulk cancel finishes and every chosen batch saw
exactly one cancel, answered 200, and no other batch any. cancels/s and the ratio to the baseline are
reported (medians of --rounds); the ratio is what the bookkeeping per batch costs, not a goal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    Children,
    describe_machine,
    now_iso,
    print_report,
    production_env,
    setup_django,
    start_redis,
    write_json,
)
from livestack import start_worker

SEED = 1
KEY_ENV = "BENCH_SIMULATOR_API_KEY"
KEY = "sk-bench-bulk-cancel"
CANCELLABLE = ("validating", "in_progress")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cancels", type=int, default=1000, help="batches to cancel (default 1000)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="give up on the bulk cancel after this many s (default 600)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, each on fresh simulators (default 3; medians reported)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.cancels < 1 or args.timeout <= 0 or args.rounds < 1:
        parser.error("--cancels and --rounds must be >= 1 and --timeout > 0")
    return args


def world_with(cancels: int) -> tuple[Any, list[str]]:
    """A seeded world holding at least `cancels` cancellable batches, and the first `cancels` of them."""
    from simulator import SimWorld

    size = max(50, cancels * 5)
    while True:
        world = SimWorld(seed=SEED, batches=size, speed=0)
        ids = [b["id"] for b in world.state()["batches"] if b["status"] in CANCELLABLE]
        if len(ids) >= cancels:
            return size, ids[:cancels]
        size = int(size * 1.5)


def cancel_counts(control: Any) -> dict[str, dict[int, int]]:
    """Batch id -> {status answered: requests} for every cancel the simulator received."""
    counts: dict[str, dict[int, int]] = {}
    for row in control.get("/_sim/requests", params={"path_prefix": "/v1/batches/"}).json()["requests"]:
        if row["method"] == "POST" and row["path"].endswith("/cancel"):
            batch_id = row["path"].removeprefix("/v1/batches/").removesuffix("/cancel")
            counts.setdefault(batch_id, {})[row["status"]] = row["count"]
    return counts


def exactly_once(counts: dict[str, dict[int, int]], chosen: list[str]) -> dict[str, int]:
    once = sum(1 for batch_id in chosen if counts.get(batch_id) == {200: 1})
    return {
        "once": once,
        "missing": sum(1 for batch_id in chosen if batch_id not in counts),
        "more_than_once_or_not_200": len(chosen) - once - sum(1 for b in chosen if b not in counts),
        "unchosen": len(set(counts) - set(chosen)),
    }


def run_baseline(base_url: str, chosen: list[str]) -> float:
    import httpx

    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
        started = time.perf_counter()
        for batch_id in chosen:
            client.post(f"/batches/{batch_id}/cancel").raise_for_status()
        return time.perf_counter() - started


def run_bulk(
    chosen: list[str], connection: Any, user: Any, timeout: float, workdir: Path
) -> tuple[float, dict[str, int]]:
    from batches import selectors_bulk, services_bulk
    from batches.models import Batch, BulkCancel, BulkCancelItem

    pks = list(Batch.objects.filter(connection=connection, batch_id__in=chosen).values_list("pk", flat=True))
    if len(pks) != len(chosen):
        raise RuntimeError(f"the sync stored {len(pks)} of the {len(chosen)} chosen batches")
    started = time.perf_counter()
    outcome = services_bulk.start_bulk_cancel(
        key="bench-" + os.urandom(12).hex(),
        batches=selectors_bulk.selected_batches(pks, None),
        selection=f"{len(pks)} batches (benchmark)",
        user=user,
    )
    if outcome.bulk is None:
        raise RuntimeError(outcome.message)
    finished = BulkCancel.objects.filter(pk=outcome.bulk.pk, finished_at__isnull=False)
    while not finished.exists():
        if time.perf_counter() - started > timeout:
            log = (workdir / "worker.log").read_text(errors="replace")
            raise RuntimeError(f"the bulk cancel did not finish in {timeout:g} s:\n{log[-3000:]}")
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    states: dict[str, int] = {}
    for state in BulkCancelItem.objects.filter(bulk=outcome.bulk).values_list("state", flat=True):
        states[state] = states.get(state, 0) + 1
    return elapsed, states


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def figures(args: argparse.Namespace, size: int, rounds: list[dict[str, Any]]) -> dict:
    n = args.cancels
    baseline_s = median([r["baseline_s"] for r in rounds])
    bulk_s = median([r["bulk_s"] for r in rounds])
    ratio = bulk_s / baseline_s

    def worst(key: str) -> dict[str, int]:
        # The round with the fewest batches cancelled exactly once: any miss shows.
        return min((r[key] for r in rounds), key=lambda once: once["once"])

    bulk_once, base_once = worst("bulk"), worst("baseline")
    states: dict[str, int] = {}
    for r in rounds:
        for state, count in r["states"].items():
            states[state] = states.get(state, 0) + count
    met = (
        bulk_once["once"] == n
        and all(r["bulk"]["unchosen"] == 0 for r in rounds)
        and states == {"done": n * len(rounds)}
    )
    columns = [
        "run",
        "median",
        "min",
        "cancels/s",
        "vs baseline",
        "seen once (worst round)",
        "missing",
        "twice or refused",
    ]

    def row(label: str, key: str, once: dict[str, int]) -> list[Any]:
        seconds = [r[key] for r in rounds]
        middle = median(seconds)
        return [
            label,
            f"{middle:.2f} s",
            f"{min(seconds):.2f} s",
            f"{n / middle:,.0f}",
            f"{middle / baseline_s:.2f}x",
            f"{once['once']:,} of {n:,}",
            once["missing"],
            once["more_than_once_or_not_200"],
        ]

    verdict = "met" if met else "NOT met"
    text = (
        f"bulk cancel of {n:,} batches finished in {bulk_s:.1f} s ({n / bulk_s:,.0f} cancels/s, "
        f"{ratio:.2f}x the bare httpx loop; medians of {len(rounds)}); the API saw each cancel exactly "
        f"once: {bulk_once['once']:,} of {n:,} in the worst round (goal: all, none twice): {verdict}"
    )
    return {
        "title": f"Bulk cancel of {n:,} batches through a Celery worker vs the bare API calls",
        "when": now_iso(),
        "machine": describe_machine(),
        "table": {
            "columns": columns,
            "rows": [
                row("baseline: httpx loop straight to the simulator", "baseline_s", base_once),
                row("bulk cancel: service -> Redis -> Celery worker -> API client", "bulk_s", bulk_once),
            ],
        },
        "notes": [
            f"{len(rounds)} round(s), each on two fresh simulators in threads of the benchmark's process "
            f"holding the same seeded world ({size:,} batches, seed {SEED}, frozen clock); the first "
            f"{n:,} validating or in_progress batches are cancelled in each, the baseline first.",
            "bulk: one SQLite database, a connection per round filled by a full sync; a private "
            "redis-server; a Celery worker (prefork, concurrency 2) with production settings; timed from "
            "start_bulk_cancel to the request marked finished. Items are claimed 50 at a time "
            "(compare-and-set under the run's token); answers, each with its CancelRequest and audit "
            "event, and the batches as the API returned them are written 25 to a transaction.",
            "seen once: batches whose cancel endpoint the simulator answered exactly once, with 200 (its "
            "/_sim/requests count); the items' final states over all rounds: "
            + ", ".join(f"{state} {count:,}" for state, count in sorted(states.items()))
            + "; cancels sent to batches not chosen: "
            + str(sum(r["bulk"]["unchosen"] for r in rounds))
            + ".",
        ],
        "headline": {"name": "bulk cancel", "seconds": bulk_s, "ratio": ratio, "met": met, "text": text},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="bench-bulk-cancel-"))
    servers: list[Any] = []
    try:
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        env = production_env(
            database_url, start_redis(), DASHBOARD_ALLOW_INTERNAL_API_URLS="1", **{KEY_ENV: KEY}
        )
        os.environ.update(env)  # this process uses the same database, Redis and settings as the worker
        setup_django(database_url)
        import httpx
        from django.contrib.auth import get_user_model

        from accounts.roles import OPERATOR, set_role
        from batches import sync
        from batches.models import Connection
        from simulator import SimWorld, start_in_thread

        user = get_user_model().objects.create_user("bench-operator")
        set_role(user, OPERATOR)
        Connection.objects.filter(from_environment=True).update(enabled=False)
        size, chosen = world_with(args.cancels)
        print(f"world: {size:,} batches, {len(chosen):,} of them to cancel", flush=True)
        start_worker(children, workdir, env, name="bench-bulk")
        rounds = []
        for number in range(1, args.rounds + 1):
            base_server, base_url = start_in_thread(SimWorld(seed=SEED, batches=size, speed=0))
            bulk_server, bulk_url = start_in_thread(SimWorld(seed=SEED, batches=size, speed=0))
            servers += [base_server, bulk_server]
            connection = Connection.objects.create(
                name=f"simulated-{number}", base_url=bulk_url, api_key_env=KEY_ENV
            )
            sync.full_sync(connection)
            base_control = httpx.Client(base_url=base_url.removesuffix("/v1"), timeout=30)
            bulk_control = httpx.Client(base_url=bulk_url.removesuffix("/v1"), timeout=30)
            bulk_control.delete("/_sim/requests").raise_for_status()  # the sync's requests do not count
            baseline_s = run_baseline(base_url, chosen)
            bulk_s, states = run_bulk(chosen, connection, user, args.timeout, workdir)
            rounds.append(
                {
                    "baseline_s": baseline_s,
                    "bulk_s": bulk_s,
                    "baseline": exactly_once(cancel_counts(base_control), chosen),
                    "bulk": exactly_once(cancel_counts(bulk_control), chosen),
                    "states": states,
                }
            )
            base_control.close()
            bulk_control.close()
            print(f"round {number}: baseline {baseline_s:.2f} s, bulk cancel {bulk_s:.2f} s", flush=True)
        data = figures(args, size, rounds)
        print_report(data)
        write_json(args.json, data)
        return 0 if data["headline"]["met"] else 1
    finally:
        from simulator import stop

        for server in servers:
            stop(server)
        children.close()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
