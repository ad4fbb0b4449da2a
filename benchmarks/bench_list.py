"""How fast is the batch list at 100,000 batches, compared with Django admin's changelist of the same model?

    DJANGO_DEBUG=1 uv run python benchmarks/bench_list.py [--batches 100000] [--rounds 100]
        [--warmup 5] [--database-url URL] [--json PATH] [--profile NAME]

Run on demand; it is not part of the test suite. It migrates a fresh SQLite database in a temporary
directory (never var/db.sqlite3) unless --database-url names another (empty) one, fills it with
--batches batches through bulk_create (the simulator's spread of statuses, five endpoints, nine models,
85 % with metadata, three connections; see fakedata.fill_batches), signs a superuser in with Django's
test Client (force_login) and times, in this process, each request below once per round, the order
rotating from round to round:

  list                 GET /                                   the page as a browser first loads it
  list, filtered       GET /?status=completed&sort=progress    a status filter and another sort
  list, 20 pages in    GET /?cursor=...                        the cursor found by following "Next" 20 times
  list, last page      GET /?cursor=...                        the cursor of the last 50 rows
  row poll fragment    GET /batches/<pk>/row/  (HX-Request)    what each running row asks every 5 s
  summary fragment     GET /  (HX-Request, HX-Target: summary) what the status cards ask every 10 s
  admin changelist     GET /admin/batches/batch/               the baseline: BatchAdmin, same rows
  admin, last page     GET /admin/batches/batch/?p=<last>      the admin's OFFSET paging at the same depth

Server time is the wall time around client.get (the whole middleware stack, the view, the template;
no network). SQL statements per request are counted during the timed requests (a cheap execute
wrapper) and, once more, listed with django.test.utils.CaptureQueriesContext. The cache is what
production has: Django's cache on Redis (dashboard/cache.py), here a private redis-server on loopback
that benchlib.start_redis starts and stops. The filter menus and the outcomes chart are cached for a
minute, so a minute's first request pays for them again and shows up in p99; every other request
pays for a few Redis round trips instead.

The headline is median(list) / median(admin changelist); the goal (issue 5) is <= 0.5, with at most
5 SQL statements for any list page. Django runs with DEBUG off whatever DJANGO_DEBUG says.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchlib
from benchlib import (
    describe_database,
    describe_machine,
    ms,
    now_iso,
    setup_django,
    summary,
    temporary_sqlite,
    write_json,
)
from fakedata import fill_batches

GOAL_RATIO = 0.5
GOAL_QUERIES = 5
DEEP_PAGES = 20
USERNAME = "bench-admin"

LIST = "list"
FILTERED = "list_filtered"
DEEP = "list_deep"
LAST = "list_last"
ROW = "row_fragment"
SUMMARY = "summary_fragment"
ADMIN = "admin_changelist"
ADMIN_LAST = "admin_last_page"
LIST_PAGES = (LIST, FILTERED, DEEP, LAST)


@dataclass
class Request:
    key: str
    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    expect: str = ""  # a fragment of the body that proves the right thing was rendered
    seconds: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    bytes: int = 0
    statements: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=100_000, help="batches in the table (default 100000)")
    parser.add_argument("--rounds", type=int, default=100, help="timed rounds (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    parser.add_argument(
        "--database-url",
        help="database to use instead of a fresh temporary SQLite file; it must hold no batches",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--profile",
        choices=(LIST, FILTERED, DEEP, LAST, ROW, SUMMARY, ADMIN, ADMIN_LAST),
        action="append",
        help="afterwards, cProfile 20 of these requests and print the hotspots (repeatable)",
    )
    parser.add_argument("--profile-top", type=int, default=25, help="rows per profile listing")
    args = parser.parse_args(argv)
    if args.batches < 2_000 or args.rounds < 1 or args.warmup < 0:
        parser.error("--batches must be >= 2000, --rounds >= 1, --warmup >= 0")
    return args


# --- set-up ----------------------------------------------------------------------------------------


def signed_in_client():
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    # The test Client talks as "testserver"; setup_test_environment() would allow it, but it also
    # instruments every template render, which would distort the timings.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    user_model = get_user_model()
    user = user_model.objects.filter(username=USERNAME).first() or user_model.objects.create_superuser(
        USERNAME, "", "unused-password-1"
    )
    client = Client()
    client.force_login(user)
    return client


def next_cursor(body: str) -> str:
    found = re.search(r'cursor=([A-Za-z0-9_\-]+)"[^>]*rel="next"', body)
    if not found:
        raise RuntimeError("the list page has no next-page link")
    return found.group(1)


def requests_to_time(client, batches: int) -> list[Request]:
    from django.contrib.admin.sites import site

    from batches import selectors
    from batches.models import Batch

    # The cursor 20 pages in, found the way a user finds it: following "Next page".
    url = "/"
    for _ in range(DEEP_PAGES):
        response = client.get(url)
        url = f"/?cursor={next_cursor(response.content.decode())}"
    deep_url = url
    # The last page: the cursor of the row just before the last 50, in the list's own order.
    sort = selectors.SORTS["created"]
    before_last = Batch.objects.order_by(*selectors._order_by(sort))[
        batches - selectors.PAGE_SIZE - 1 : batches - selectors.PAGE_SIZE
    ].get()
    last_url = f"/?cursor={selectors._encode_cursor(before_last, sort)}"
    running = Batch.objects.filter(status="in_progress").latest("created_at")
    per_page = site._registry[Batch].list_per_page
    admin_last = -(-batches // per_page)  # the admin's pages are numbered from 1
    htmx = {"HX-Request": "true", "HX-Current-URL": "http://testserver/"}
    return [
        Request(LIST, "list page /", "/", expect='rel="next"'),
        Request(
            FILTERED,
            "list ?status=completed&sort=progress",
            "/?status=completed&sort=progress",
            expect="batch-",
        ),
        Request(DEEP, f"list, {DEEP_PAGES} pages in (cursor)", deep_url, expect="« First page"),
        Request(LAST, "list, last page (cursor)", last_url, expect="« First page"),
        Request(
            ROW, "row poll fragment (htmx)", f"/batches/{running.pk}/row/", htmx, expect=f"batch-{running.pk}"
        ),
        Request(
            SUMMARY,
            "summary poll fragment (htmx)",
            "/",
            {**htmx, "HX-Target": "summary"},
            expect='id="summary"',
        ),
        Request(ADMIN, "admin changelist (baseline)", "/admin/batches/batch/", expect="result_list"),
        Request(
            ADMIN_LAST,
            f"admin, last page (?p={admin_last})",
            f"/admin/batches/batch/?p={admin_last}",
            expect="result_list",
        ),
    ]


# --- timing ---------------------------------------------------------------------------------------------


def fetch(client, request: Request):
    response = client.get(request.url, headers=request.headers)
    if response.status_code != 200:
        raise RuntimeError(f"{request.url} answered {response.status_code}")
    return response


def check(client, request: Request) -> None:
    """Once, untimed: the right page, and the SQL it runs (CaptureQueriesContext)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = fetch(client, request)
    body = response.content.decode()
    if request.expect not in body:
        raise RuntimeError(f"{request.url} does not show {request.expect!r}")
    if request.key in (LIST, FILTERED, DEEP, LAST):
        rows = len(re.findall(r'<tr id="batch-\d+"', body))
        if rows != 50:
            raise RuntimeError(f"{request.url} shows {rows} rows, expected 50")
    request.bytes = len(response.content)
    request.statements = [query["sql"] for query in captured.captured_queries]


def time_one(client, request: Request, record: bool) -> None:
    from django.db import connection

    counter = benchlib.QueryCounter()
    with connection.execute_wrapper(counter):
        started = time.perf_counter()
        fetch(client, request)
        seconds = time.perf_counter() - started
    if record:
        request.seconds.append(seconds)
        request.queries.append(counter.count)


def run_rounds(client, requests: list[Request], rounds: int, warmup: int) -> None:
    for index in range(warmup + rounds):
        record = index >= warmup
        if index == warmup or (record and (index - warmup + 1) % 25 == 0):
            label = f"round {index - warmup + 1}/{rounds}" if record else "warm-up done"
            print(f"  {label} ...", flush=True)
        gc.collect()
        shift = index % len(requests)
        for request in requests[shift:] + requests[:shift]:
            time_one(client, request, record)


def profile(client, requests: list[Request], keys: list[str], top: int) -> str:
    out = io.StringIO()
    for key in keys:
        request = next(r for r in requests if r.key == key)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(20):
            fetch(client, request)
        profiler.disable()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        out.write(f"\n=== cProfile of 20 x {request.label}, by cumulative time ===\n")
        stats.sort_stats("cumulative").print_stats(top)
        out.write("\n=== ... by own time ===\n")
        stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --- report -----------------------------------------------------------------------------------------------


def figures(args, requests: list[Request], fill: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    measurements: dict[str, dict[str, Any]] = {}
    for request in requests:
        stats = summary(request.seconds)
        measurements[request.key] = {
            "label": request.label,
            "url": request.url,
            "median_s": stats["median"],
            "p99_s": stats["p99"],
            "min_s": stats["min"],
            "max_s": stats["max"],
            "queries_median": sorted(request.queries)[len(request.queries) // 2],
            "queries_max": max(request.queries),
            "queries_min": min(request.queries),
            "bytes": request.bytes,
            "sql": request.statements,
            "seconds": request.seconds,
        }
    by_key = measurements
    ratio = by_key[LIST]["median_s"] / by_key[ADMIN]["median_s"]
    worst_queries = max(by_key[key]["queries_max"] for key in LIST_PAGES)
    steady_queries = max(by_key[key]["queries_median"] for key in LIST_PAGES)
    met = ratio <= GOAL_RATIO and steady_queries <= GOAL_QUERIES
    verdict = "met" if met else "NOT met"
    text = (
        f"list page / admin changelist = {ratio:.2f} (medians; goal <= {GOAL_RATIO}); "
        f"SQL statements per list page {steady_queries} (goal <= {GOAL_QUERIES}; "
        f"{worst_queries} at most, when a minute's cache expires): {verdict}"
    )
    columns = ["request", "median", "p99", "SQL stmts", "vs admin", "KiB"]
    rows = []
    for row in measurements.values():
        queries = str(row["queries_median"])
        if row["queries_max"] != row["queries_median"]:
            queries += f" (max {row['queries_max']})"
        rows.append(
            [
                row["label"],
                ms(row["median_s"]),
                ms(row["p99_s"]),
                queries,
                f"{row['median_s'] / by_key[ADMIN]['median_s']:.2f}x",
                f"{row['bytes'] / 1024:.0f}",
            ]
        )
    return {
        "benchmark": "list",
        "title": f"List page at {args.batches:,} batches vs Django admin's changelist",
        "date": now_iso(),
        "batches": args.batches,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "fill": fill,
        **context,
        "measurements": measurements,
        "table": {"columns": columns, "rows": rows},
        "notes": [
            f"{args.batches:,} batches (bulk_create, {fill['seconds']:.0f} s), {args.rounds} timed rounds "
            f"after {args.warmup} warm-up rounds, interleaved (the order rotates each round); Django test "
            "Client in-process, signed in as a superuser, DEBUG off.",
            "median and p99 of the wall time around client.get; SQL statements per request as counted "
            "during the timed requests (median, and the maximum when it differs).",
            "the filter menus and the outcomes chart are cached for a minute in Django's cache on Redis, "
            "as in production (a private redis-server on loopback), so the first request of a minute "
            "runs their queries too.",
        ],
        "headline": {
            "name": "list page / admin changelist",
            "ratio": ratio,
            "goal": GOAL_RATIO,
            "queries": steady_queries,
            "queries_worst": worst_queries,
            "goal_queries": GOAL_QUERIES,
            "met": met,
            "text": text,
        },
    }


def print_report(data: dict[str, Any]) -> None:
    database = data["database"]
    header = [f"software:  {data['machine']['python']}, Django {data['django']} (DEBUG off)"]
    if database["vendor"] == "sqlite":
        header.append(
            f"database:  SQLite {database['version']} ({database['journal_mode']}), {database['name']}"
        )
    else:
        header.append(f"database:  {database['vendor']}, {database['version']}")
    sql = [
        f"  {statement[:160]}{' ...' if len(statement) > 160 else ''}"
        for statement in data["measurements"][LIST]["sql"]
    ]
    benchlib.print_report(data, header=header, extra=["\nSQL of the list page:", *sql])


# --- main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with temporary_sqlite(args.database_url, "bench-list-") as url:
        setup_django(url)
        import django

        from batches.models import Batch

        if Batch.objects.exists():
            sys.exit("refusing to run: the database already holds batches; give it an empty database")
        print(f"filling {args.batches:,} batches ...", flush=True)
        fill = fill_batches(args.batches, progress=True)
        client = signed_in_client()
        requests = requests_to_time(client, args.batches)
        for request in requests:
            check(client, request)
        print(
            f"timing {len(requests)} requests x {args.rounds} rounds (+{args.warmup} warm-up) ...", flush=True
        )
        run_rounds(client, requests, args.rounds, args.warmup)
        context = {
            "machine": describe_machine(),
            "database": describe_database(),
            "django": django.get_version(),
        }
        data = figures(args, requests, fill, context)
        print_report(data)
        write_json(args.json, data)
        if args.profile:
            print(profile(client, requests, args.profile, args.profile_top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
