"""How much polling can the production server take: the row fragment under 200 concurrent clients, against
a bare Django view under the same server and settings (the ceiling).

    DJANGO_DEBUG=1 uv run python benchmarks/bench_poll_load.py [--seconds 60] [--connections 200]
        [--workers 2] [--threads 4] [--batches 1000] [--rounds 1] [--json PATH]

Run on demand; it is not part of the test suite. It fills a fresh SQLite file in a temporary directory
with --batches batches (fakedata.fill_batches) and starts gunicorn, as in production (README: `gunicorn
dashboard.wsgi --config deploy/gunicorn.conf.py`: gthread workers, reuse_port), on 127.0.0.1 at a free port:
--workers workers of --threads threads, DJANGO_DEBUG=0, a random DJANGO_SECRET_KEY,
DJANGO_ALLOWED_HOSTS=127.0.0.1, and only what plain HTTP on loopback needs changed
(DJANGO_SSL_REDIRECT=0, DJANGO_SECURE_COOKIES=0, DASHBOARD_LOGIN_RATE_LIMIT=0). As in production,
sessions live in the database and the cache every worker shares (who was last checked polling) in
Redis: a private redis-server on loopback (benchlib.start_redis), which REDIS_URL and
DASHBOARD_CACHE_REDIS_URL point at; the run stops unless gunicorn's workers wrote to it. The
settings module is benchmarks/ceiling_settings.py: the dashboard's settings with ROOT_URLCONF =
benchmarks/ceiling_urls.py, which is the dashboard's URLs plus /bench/ceiling/, a view returning "ok".
A viewer signs in once through the real login form (CSRF included) and its session cookie goes with
every request.

A browser polls a running batch's row with the version of the row it shows (GET /batches/<pk>/row/?v=...,
HX-Request: true); the server answers 204 when nothing on the row changed and renders it otherwise. With
the default intervals (a row polls every 5 s; the connection's refresh every 15 s moves the row's
last_synced_at, so its version, even when no count moved) one poll in three renders. So wrk
(Debian's package; installed when missing), -t2 -c<connections> --latency, each for --seconds after a
5 s warm-up, one after the other (the order alternates when --rounds > 1), measures:

  row poll as browsers send it   each connection cycles: current version, current version, stale
                                 version (204, 204, a render), as the defaults make a browser do
  row poll, every poll renders   always a stale version: the worst case, every row changed every poll
  row poll, row unchanged        always the current version: 204s only
  ceiling                        GET /bench/ceiling/ with the same headers

wrk runs on the same machine, so it takes CPU from the server in every measurement alike: compare the
ratios, not the absolute figures. Errors are wrk's socket errors (connect, read, write, timeouts over
--timeout) plus every answer that is not a 200 or 204 or that carries HX-Redirect (a lost session sends
the browser to the login page with a 200). The headline is rps(row poll as browsers send it) /
rps(ceiling); the goal (issue 9) is >= 0.5 with no errors. The worst case is printed next to it.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import benchlib
import httpload
from benchlib import (
    Children,
    ensure_debian_package,
    now_iso,
    setup_django,
    write_json,
)
from fakedata import fill_batches

GOAL_RATIO = 0.5
USERNAME = "bench-viewer"
PASSWORD = "bench-viewer-password-1"
POLL = "row_fragment"
POLL_RENDER = "row_fragment_render"
POLL_UNCHANGED = "row_fragment_unchanged"
CEILING = "ceiling"
LABELS = {
    POLL: "row poll as browsers send it (2 of 3 unchanged)",
    POLL_RENDER: "row poll, every poll renders (worst case)",
    POLL_UNCHANGED: "row poll, row unchanged (204)",
    CEILING: "ceiling: bare view, constant string",
}
# A version no row has: the server renders the row, as it does when the batch changed.
STALE_VERSION = "0000000000000000"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=int, default=60, help="seconds of load per measurement (default 60)"
    )
    parser.add_argument("--connections", type=int, default=200, help="concurrent connections (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument("--batches", type=int, default=1_000, help="batches in the database (default 1000)")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each (default 1)")
    parser.add_argument(
        "--timeout", type=int, default=10, help="wrk's request timeout in seconds (default 10)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 600 or not 1 <= args.connections <= 2000 or args.rounds < 1:
        parser.error("--seconds must be 1..600, --connections 1..2000, --rounds >= 1")
    return args


def prepare_database(url: str, batches: int) -> int:
    """Fill, create the viewer, and return the pk of a running batch to poll (setup_django starts the
    private Redis the server will use too)."""
    setup_django(url)
    from django.contrib.auth import get_user_model

    from accounts.roles import VIEWER, set_role
    from batches.models import Batch

    print(f"filling {batches:,} batches ...", flush=True)
    fill_batches(batches)
    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    set_role(user, VIEWER)
    running = Batch.objects.filter(status="in_progress").latest("created_at")
    from django.db import connections

    connections.close_all()
    return running.pk


def verify(base: str, cookie: str, pk: int) -> tuple[str, dict[str, int]]:
    """Checks each answer is what a browser would get, and returns the row's current version."""
    import httpx

    headers = {"Cookie": cookie, "HX-Request": "true"}
    with httpx.Client(base_url=base, timeout=30) as client:
        fragment = client.get(f"/batches/{pk}/row/", params={"v": STALE_VERSION}, headers=headers)
        version = re.search(rf'hx-get="/batches/{pk}/row/\?v=([0-9a-f]+)"', fragment.text)
        if (
            fragment.status_code != 200
            or f'id="batch-{pk}"' not in fragment.text
            or "HX-Redirect" in fragment.headers
            or version is None
        ):
            raise RuntimeError(
                f"the row fragment is not served as expected: {fragment.status_code} {fragment.text[:300]}"
            )
        unchanged = client.get(f"/batches/{pk}/row/", params={"v": version.group(1)}, headers=headers)
        if unchanged.status_code != 204 or unchanged.content:
            raise RuntimeError(
                f"an unchanged row is not a 204: {unchanged.status_code} {unchanged.text[:300]}"
            )
        ceiling = client.get("/bench/ceiling/", headers=headers)
        if ceiling.status_code != 200 or ceiling.text != "ok":
            raise RuntimeError(f"the ceiling view is not served: {ceiling.status_code} {ceiling.text[:300]}")
    sizes = {
        POLL: round((2 * len(unchanged.content) + len(fragment.content)) / 3),
        POLL_RENDER: len(fragment.content),
        POLL_UNCHANGED: len(unchanged.content),
        CEILING: len(ceiling.content),
    }
    return version.group(1), sizes


def figures(
    args, runs: dict[str, list[dict]], sizes: dict[str, int], context: dict[str, Any]
) -> dict[str, Any]:
    def total(key: str, name: str) -> float:
        return sum(run[name] for run in runs[key])

    measurements = {}
    for key, key_runs in runs.items():
        duration = total(key, "duration_us") / 1e6
        measurements[key] = {
            "label": LABELS[key],
            "rps": total(key, "requests") / duration,
            "requests": int(total(key, "requests")),
            "p50_ms": max(run["p50_us"] for run in key_runs) / 1000,
            "p99_ms": max(run["p99_us"] for run in key_runs) / 1000,
            "max_ms": max(run["max_us"] for run in key_runs) / 1000,
            "errors": int(total(key, "errors")),
            "socket_errors": int(
                sum(run["connect"] + run["read"] + run["write"] + run["timeout"] for run in key_runs)
            ),
            "non_200": int(total(key, "bad_status")),
            "hx_redirect": int(total(key, "hx_redirect")),
            "server_cpu_ms_per_request": 1000 * total(key, "server_cpu_s") / max(total(key, "requests"), 1),
            "bytes_per_response": sizes[key],
            "runs": key_runs,
        }
    poll, ceiling = measurements[POLL], measurements[CEILING]
    ratio = poll["rps"] / ceiling["rps"]
    worst = measurements[POLL_RENDER]["rps"] / ceiling["rps"]
    errors = sum(row["errors"] for row in measurements.values())
    met = ratio >= GOAL_RATIO and errors == 0
    text = (
        f"row poll as browsers send it / ceiling = {ratio:.2f} (requests/s; goal >= {GOAL_RATIO}; "
        f"{worst:.2f} when every poll renders), {errors} errors (goal 0): {'met' if met else 'NOT met'}"
    )
    columns = ["endpoint", "requests/s", "p50", "p99", "max", "errors", "server CPU/req", "vs ceiling"]
    rows = [
        [
            row["label"],
            f"{row['rps']:,.0f}",
            f"{row['p50_ms']:.0f} ms",
            f"{row['p99_ms']:.0f} ms",
            f"{row['max_ms']:.0f} ms",
            f"{row['errors']} ({row['non_200']} non-200, {row['socket_errors']} socket)",
            f"{row['server_cpu_ms_per_request']:.2f} ms",
            f"{row['rps'] / ceiling['rps']:.2f}x",
        ]
        for row in measurements.values()
    ]
    return {
        "benchmark": "poll_load",
        "title": f"Row poll fragment under {args.connections} concurrent clients vs a bare Django view",
        "date": now_iso(),
        "seconds": args.seconds,
        "connections": args.connections,
        "server": (
            f"gunicorn, {args.workers} workers x {args.threads} threads (gthread, reuse_port), DJANGO_DEBUG=0"
        ),
        "batches": args.batches,
        "rounds": args.rounds,
        **context,
        "measurements": measurements,
        "table": {"columns": columns, "rows": rows},
        "notes": [
            f"gunicorn {context['gunicorn']} serving dashboard.wsgi on 127.0.0.1 with "
            f"deploy/gunicorn.conf.py (gthread, reuse_port), {args.workers} workers x {args.threads} "
            f"threads, "
            f"production settings (DEBUG off, sessions in the database, the cache in Redis: a private "
            f"redis-server on loopback; persistent SQLite connections in WAL mode, as "
            f"dashboard.settings configures); "
            f"{args.batches:,} batches.",
            f"wrk {context['wrk']}: 2 threads, {args.connections} connections, {args.seconds} s per "
            f"measurement x {args.rounds} after a 5 s warm-up, keep-alive, a viewer's session cookie and "
            f"HX-Request: true; timeout {args.timeout} s. wrk shares the machine's cores with the server.",
            "as browsers send it: each connection cycles through the row's current version twice, then a "
            "stale one (204, 204, a render), as a 5 s poll against a 15 s refresh makes a browser do; a "
            "changed row renders, and so does every poll of the worst case.",
            "row polls reuse their check of who is polling for DASHBOARD_POLL_AUTH_SECONDS (2 s, the "
            "default; accounts/polls.py), so most polls load no user; the ceiling, an ordinary view behind "
            "LoginRequiredMiddleware, loads the session and the user on every request.",
            "server CPU/req: the gunicorn processes' CPU time during the run divided by the requests.",
        ],
        "headline": {
            "name": "row poll as browsers send it / ceiling",
            "ratio": ratio,
            "worst_case_ratio": worst,
            "goal": GOAL_RATIO,
            "errors": errors,
            "met": met,
            "text": text,
        },
    }


def print_report(data: dict[str, Any]) -> None:
    server = f"server:    {data['server']}; {data['machine']['python']}, Django {data['django']}"
    benchlib.print_report(data, header=[server])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_debian_package("wrk", "wrk")
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    try:
        url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        pk = prepare_database(url, args.batches)
        gunicorn, base, cookie = httpload.serve(
            children, workdir, url, args.workers, args.threads, USERNAME, PASSWORD
        )
        version, sizes = verify(base, cookie, pk)
        # The list page caches its filter menus; nothing there means the workers' cache misses
        # (Redis unreachable), which would flatter nothing and skew everything. (The poll check
        # keeps who polls in the raw Redis client's database since issue 16, not in the cache.)
        import httpx

        httpx.get(f"{base}/", headers={"Cookie": cookie}, timeout=30).raise_for_status()
        if not benchlib.cache_keys("*batches:*"):
            raise RuntimeError("gunicorn wrote nothing to the private Redis its cache points at")
        row = f"/batches/{pk}/row/?v="
        targets = {
            POLL: [row + version, row + version, row + STALE_VERSION],
            POLL_RENDER: [row + STALE_VERSION],
            POLL_UNCHANGED: [row + version],
            CEILING: ["/bench/ceiling/"],
        }
        for key, paths in targets.items():
            print(f"warm-up: {key}, 5 s ...", flush=True)
            httpload.run_wrk(wrk, workdir, base, paths, cookie, 5, min(args.connections, 50), args.timeout)
        runs: dict[str, list[dict]] = {key: [] for key in targets}
        for index in range(args.rounds):
            order = list(targets) if index % 2 == 0 else list(reversed(targets))
            for key in order:
                print(
                    f"round {index + 1}/{args.rounds}: {key}, {args.connections} connections, "
                    f"{args.seconds} s ...",
                    flush=True,
                )
                pids = httpload.gunicorn_pids(gunicorn.pid)
                cpu_before = httpload.process_cpu_seconds(pids)
                result = httpload.run_wrk(
                    wrk, workdir, base, targets[key], cookie, args.seconds, args.connections, args.timeout
                )
                result["server_cpu_s"] = httpload.process_cpu_seconds(pids) - cpu_before
                print(
                    f"  {result['rps']:,.0f} requests/s, p50 {result['p50_us'] / 1000:.0f} ms, "
                    f"p99 {result['p99_us'] / 1000:.0f} ms, {result['errors']} errors",
                    flush=True,
                )
                runs[key].append(result)
        if gunicorn.poll() is not None:
            raise RuntimeError(f"gunicorn exited during the run:\n{(workdir / 'gunicorn.log').read_text()}")
        context = httpload.run_context(wrk, workdir)
        data = figures(args, runs, sizes, context)
        print_report(data)
        if context["server_log_tail"].strip():
            tail = context["server_log_tail"][-1500:]
            print(f"\ngunicorn's log (warnings and errors), last lines:\n{tail}")
        write_json(args.json, data)
    finally:
        children.close()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
