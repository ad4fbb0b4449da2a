"""How many API list calls a connection costs per minute, while a page watches it and while none does.

    DJANGO_DEBUG=1 uv run python benchmarks/bench_api_budget.py [--watched 120] [--idle 960]
        [--batches 200] [--json PATH]

Run on demand; it is not part of the test suite. It starts the stack as bench_freshness.py does (the
simulator in a thread of this process with a frozen clock, a private Redis, a Celery worker and beat,
runserver with DJANGO_DEBUG=0, a fresh SQLite file) with the DEFAULT settings: a watched connection is
refreshed every 5 s (its refresh_interval), an idle one every 60 s (SYNC_IDLE_REFRESH_SECONDS), never
more than 20 API calls a minute (SYNC_API_CALLS_PER_MINUTE). The simulator counts the list calls it
answers (GET /v1/batches) and the retrieves (GET /v1/batches/<id>).

After the first full sync: --watched seconds with an open list page polling as a browser does (GET
/live/ every 5 s with a viewer's session, which marks the connection as watched), then, once the
watch has lapsed (LIVE_WATCH_SECONDS, 30 s, plus the refresh already scheduled), --idle seconds with no
page open. The figures are list calls per minute in each phase; the goals (issue 16): at most 20 while
watched, at most 1 while idle. Full syncs are counted with the refreshes: every 5 minutes while watched,
every 15 (SYNC_IDLE_FULL_SYNC_SECONDS) while idle, each in the place of a refresh, and an idle full sync
of k list calls puts the next refresh k minutes later. The idle phase is 16 minutes by default, so it
holds one idle full sync whenever it falls (a shorter --idle may miss it and flatter the figure).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import (
    Children,
    describe_machine,
    free_port,
    now_iso,
    print_report,
    production_env,
    setup_django,
    start_redis,
    write_json,
)
from livestack import start_stack

GOAL_WATCHED = 20.0
GOAL_IDLE = 1.0
KEY_ENV = "BENCH_BUDGET_API_KEY"
USERNAME = "bench-budget"
PASSWORD = "bench-budget-password-1"
WATCH_LAPSE_S = 30 + 60 + 5  # the watch's time-to-live, then the watched-pace run already scheduled


class CallCounter:
    """Counts the simulator's list and retrieve calls, by wrapping its world's methods (thread-safe)."""

    def __init__(self, world: Any) -> None:
        self.lock = threading.Lock()
        self.lists: list[float] = []
        self.retrieves: list[float] = []
        listing, getting = world.list_batches, world.get_batch

        def list_batches(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.lists.append(time.monotonic())
            return listing(*args, **kwargs)

        def get_batch(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.retrieves.append(time.monotonic())
            return getting(*args, **kwargs)

        world.list_batches, world.get_batch = list_batches, get_batch

    def between(self, start: float, end: float) -> tuple[int, int]:
        with self.lock:
            return (
                sum(start <= at < end for at in self.lists),
                sum(start <= at < end for at in self.retrieves),
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watched", type=int, default=120, help="seconds with a page open (default 120)")
    parser.add_argument(
        "--idle",
        type=int,
        default=960,
        # At least one idle full-sync interval (SYNC_IDLE_FULL_SYNC_SECONDS, 15 minutes), so that the
        # figure counts the full sync that comes with it rather than a window that happens to miss it.
        help="seconds with no page open (default 960: one idle full-sync interval and a minute)",
    )
    parser.add_argument("--batches", type=int, default=200, help="simulated batches (default 200)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.watched < 10 or args.idle < 60:
        parser.error("--watched >= 10 and --idle >= 60")
    return args


def watch(base: str, seconds: float) -> int:
    """A browser's list page for `seconds`: the page, then its poll every 5 s; returns the polls sent."""
    import html

    import httpx
    from httpload import sign_in

    cookie = sign_in(base, USERNAME, PASSWORD)
    headers = {"Cookie": cookie, "HX-Request": "true"}
    polls = 0
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        page = client.get("/").text
        found = re.search(r'id="live-poll" hidden hx-get="([^"]+)"', page)
        if found is None:
            raise RuntimeError(f"the list page has no poll: {page[:300]}")
        url = html.unescape(found.group(1))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            answer = client.get(url)
            polls += 1
            if answer.status_code not in (200, 204) or "HX-Redirect" in answer.headers:
                raise RuntimeError(f"the poll answered {answer.status_code}")
            newer = re.search(r'id="live-poll" hidden hx-get="([^"]+)"', answer.text)
            if newer:
                url = html.unescape(newer.group(1))
            time.sleep(5)
    return polls


def figures(args, phases: dict[str, dict[str, float]], context: dict[str, Any]) -> dict[str, Any]:
    watched, idle = phases["watched"], phases["idle"]
    met = watched["lists_per_minute"] <= GOAL_WATCHED and idle["lists_per_minute"] <= GOAL_IDLE
    text = (
        f"list calls per minute: {watched['lists_per_minute']:.1f} while watched (goal <= {GOAL_WATCHED:g}), "
        f"{idle['lists_per_minute']:.1f} while idle (goal <= {GOAL_IDLE:g}): {'met' if met else 'NOT met'}"
    )
    columns = ["phase", "seconds", "list calls", "per minute", "retrieves", "per minute"]
    rows = [
        [
            name,
            f"{phase['seconds']:.0f}",
            f"{phase['lists']:.0f}",
            f"{phase['lists_per_minute']:.1f}",
            f"{phase['retrieves']:.0f}",
            f"{phase['retrieves_per_minute']:.1f}",
        ]
        for name, phase in phases.items()
    ]
    return {
        "benchmark": "api_budget",
        "title": "API calls per connection and minute, watched and idle",
        "date": now_iso(),
        "simulated_batches": args.batches,
        **context,
        "phases": phases,
        "table": {"columns": columns, "rows": rows},
        "notes": [
            "defaults: refresh every 5 s while a page polled within 30 s, every 60 s otherwise, at most 20 "
            "API calls in any minute per connection (a Redis sorted set every worker shares, full syncs "
            "included); a full sync every 5 minutes while watched, every 15 while idle, each in the place "
            "of a refresh (idle, the next refresh waits a minute per list call it made); each run records "
            "when the next is due and beat's dispatcher, every second, starts it then.",
            f"stack: simulator (thread, {args.batches} batches, frozen clock, so every active batch stays "
            "active), redis-server, a Celery worker and beat, runserver (DJANGO_DEBUG=0), SQLite.",
            "watched: a viewer's list page polling GET /live/ every 5 s; idle: no page for the phase, "
            "measured from when the watch has lapsed.",
        ],
        "headline": {
            "name": "list calls per minute, watched and idle",
            "watched": watched["lists_per_minute"],
            "idle": idle["lists_per_minute"],
            "met": met,
            "text": text,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="bench-budget-"))
    server = None
    try:
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        web_port = free_port()
        env = production_env(
            database_url, start_redis(), DASHBOARD_ALLOW_INTERNAL_API_URLS="1", **{KEY_ENV: "sk-bench"}
        )
        os.environ.update(env)
        setup_django(database_url)
        from django.contrib.auth import get_user_model

        from accounts.roles import VIEWER, set_role
        from batches.models import Batch, Connection
        from simulator import SimWorld, start_in_thread

        world = SimWorld(seed=1, batches=args.batches, speed=0)
        counter = CallCounter(world)
        server, base_url = start_in_thread(world)
        Connection.objects.filter(from_environment=True).update(enabled=False)
        Connection.objects.create(name="simulated", base_url=base_url, api_key_env=KEY_ENV)
        set_role(get_user_model().objects.create_user(USERNAME, password=PASSWORD), VIEWER)
        print("starting the Celery worker and beat, and the web server ...", flush=True)
        start_stack(children, workdir, env, web_port)
        until = time.monotonic() + 120
        while Batch.objects.count() < args.batches:
            if time.monotonic() > until:
                raise RuntimeError("the first full sync did not finish")
            time.sleep(0.5)
        base = f"http://127.0.0.1:{web_port}"
        phases: dict[str, dict[str, float]] = {}
        print(f"watched: a page polling for {args.watched} s ...", flush=True)
        start = time.monotonic()
        watch(base, args.watched)
        phases["watched"] = phase(counter, start, time.monotonic())
        print(f"  {phases['watched']}", flush=True)
        print(
            f"waiting {WATCH_LAPSE_S} s for the watch to lapse, then idle for {args.idle} s ...", flush=True
        )
        time.sleep(WATCH_LAPSE_S)
        start = time.monotonic()
        time.sleep(args.idle)
        phases["idle"] = phase(counter, start, time.monotonic())
        print(f"  {phases['idle']}", flush=True)
        data = figures(args, phases, {"machine": describe_machine()})
        print_report(data)
        write_json(args.json, data)
    finally:
        if server is not None:
            from simulator import stop

            stop(server)
        children.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def phase(counter: CallCounter, start: float, end: float) -> dict[str, float]:
    lists, retrieves = counter.between(start, end)
    minutes = (end - start) / 60
    return {
        "seconds": end - start,
        "lists": lists,
        "retrieves": retrieves,
        "lists_per_minute": lists / minutes,
        "retrieves_per_minute": retrieves / minutes,
    }


if __name__ == "__main__":
    sys.exit(main())
