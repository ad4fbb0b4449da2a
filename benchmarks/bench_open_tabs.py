"""How many open list tabs one server keeps live: the page poll against the per-row polls it replaced.

    DJANGO_DEBUG=1 uv run python benchmarks/bench_open_tabs.py [--seconds 30] [--workers 2] [--threads 4]
        [--page-tabs 500,1000,...] [--row-tabs 50,100,...] [--batches 1000] [--json PATH]

Run on demand; it is not part of the test suite. Like bench_poll_load.py it fills a fresh SQLite file
with --batches batches (fakedata.fill_batches), signs a viewer in through the login form, and starts
gunicorn as in production (deploy/gunicorn.conf.py: gthread, reuse_port; --workers x --threads,
DJANGO_DEBUG=0, sessions in the database, the cache and the live path's counters in a private Redis).

Each tab shows the list filtered to running batches (`/?status=in_progress`): 50 running rows. A tab
polls as a browser does, and one row in ten changes per 5 s interval:

  page poll   one request per tab every 5 s (GET /live/?... with the tab's change token and the versions
              of its rows and summary). A row changes every interval, so the token a tab sends is always
              outdated: every poll is a full check (rows read, versions compared, the counts looked up)
              and its answer carries the 5 rows whose version the tab does not have yet, from the
              shared cache of rendered rows: the steady state, never the 204 shortcut.
  per-row     50 requests per tab every 5 s (GET /batches/<pk>/row/?v=..., today's baseline before
              issue 16): 9 in 10 carry the row's current version (a 204), 1 in 10 a stale one (a render).
  ceiling     one request per tab every 5 s to a bare view returning a constant (ceiling_urls.py, as
              bench_poll_load.py), same server, middleware and session: what any view can get here.

wrk (Debian's package) drives it with keep-alive connections (about 0.8 x the request rate, at most 256:
nginx's upstream pool carries the browsers' polls to gunicorn over a few connections) that each wait
between requests (httpload.run_wrk's pause), so the request rate is the tabs' (tabs / 5 per second for
the page poll, 10 x tabs for per-row). For each mode the tab counts of its
ladder are tried in turn, --seconds each after a 3 s warm-up, until one fails; a count is served when
p99 <= 250 ms, no errors (socket errors, answers other than 200/204, HX-Redirect) and at least 90 % of
the requests it should have sent were answered (a server that falls behind slows wrk down). Each
connection sends its first request at once and paces the following ones (httpload.run_wrk says why:
otherwise the first request of every connection waited for gunicorn threads held by connections still
silent, a tail of the benchmark's own making). The
headline is the largest page-poll count served (goal: at least 2,000), and its ratio to per-row's.
wrk shares the machine's cores with the server, alike in both modes.
"""

from __future__ import annotations

import argparse
import html
import os
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import benchlib
import httpload
from bench_poll_load import PASSWORD, USERNAME, prepare_database
from benchlib import (
    Children,
    ensure_debian_package,
    now_iso,
    write_json,
)

GOAL_TABS = 2_000
P99_LIMIT_MS = 250.0
MIN_SENT_SHARE = 0.9
INTERVAL_S = 5.0
ROWS_PER_TAB = 50
CHANGED_PER_INTERVAL = 5  # one row in ten
STALE = "0000000000000000"
PAGE = "page_poll"
PER_ROW = "per_row"
CEILING = "ceiling"
LABELS = {
    PAGE: "page poll (one request per tab and 5 s)",
    PER_ROW: "per-row polls (50 per tab and 5 s)",
    CEILING: "ceiling: bare view (one request per tab and 5 s)",
}
RATE_PER_TAB = {PAGE: 1 / INTERVAL_S, PER_ROW: ROWS_PER_TAB / INTERVAL_S, CEILING: 1 / INTERVAL_S}
# Browsers reach gunicorn through nginx, whose upstream pool (deploy/nginx: keepalive 32) carries every
# tab's polls over a few keep-alive connections; gunicorn itself closes a connection idle for 2 s. So
# wrk uses about 0.8 x the request rate in connections (each waiting at most ~1.2 s between requests,
# under gunicorn's 2 s), at most this many, which keeps the wait long beside the answer's own time.
MAX_CONNECTIONS = 256


def _counts(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30, help="seconds per tab count (default 30)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument("--batches", type=int, default=1_000, help="batches in the database (default 1000)")
    parser.add_argument(
        "--page-tabs",
        type=_counts,
        default=[500, 1000, 1500, 2000, 2500, 3000, 4000, 5000],
        help="the page poll's ladder of tab counts",
    )
    parser.add_argument(
        "--row-tabs",
        type=_counts,
        default=[50, 100, 150, 200, 250, 300, 400, 500],
        help="the per-row polls' ladder of tab counts",
    )
    parser.add_argument(
        "--ceiling-tabs",
        type=_counts,
        default=[1000, 2000, 3000, 4000, 5000, 6000],
        help="the bare view's ladder of tab counts (0 to leave it out)",
    )
    parser.add_argument("--timeout", type=int, default=10, help="wrk's request timeout in seconds")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    args.ceiling_tabs = [count for count in args.ceiling_tabs if count > 0]
    if not 1 <= args.seconds <= 600 or not args.page_tabs or not args.row_tabs:
        parser.error("--seconds must be 1..600 and each ladder must name at least one count")
    return args


def tab_requests(base: str, cookie: str) -> dict[str, list[str]]:
    """The requests a tab sends in each mode, read off the page a browser gets, and checked."""
    import httpx

    headers = {"Cookie": cookie, "HX-Request": "true"}
    with httpx.Client(base_url=base, timeout=30, headers={"Cookie": cookie}) as client:
        page = client.get("/", params={"status": "in_progress"}).text
        poll = re.search(r'id="live-poll" hidden hx-get="([^"]+)"', page)
        rows = re.findall(r'data-live="(\d+)" data-version="([0-9a-f]+)"', page)
        summary = re.search(r'data-live-part="s" data-version="([0-9a-f]+)"', page)
        if poll is None or summary is None or len(rows) < ROWS_PER_TAB:
            raise RuntimeError(f"the list shows {len(rows)} running rows (need {ROWS_PER_TAB}) or no poll")
        poll_url = html.unescape(poll.group(1))
        rng = random.Random(1)
        page_paths = []
        for _ in range(20):
            stale = set(rng.sample(range(len(rows)), CHANGED_PER_INTERVAL))
            versions = ",".join(f"{pk}.{STALE if i in stale else v}" for i, (pk, v) in enumerate(rows))
            outdated = re.sub(r"([?&])c=[^&]*", r"\1c=outdated", poll_url)
            page_paths.append(f"{outdated}&{urlencode({'rows': versions, 's': summary.group(1)})}")
        answer = client.get(page_paths[0], headers=headers)
        sent = re.findall(r'<tr id="batch-(\d+)"', answer.text)
        redirected = "HX-Redirect" in answer.headers
        if answer.status_code != 200 or len(sent) != CHANGED_PER_INTERVAL or redirected:
            raise RuntimeError(f"the page poll answered {answer.status_code} with rows {sent}")
        shown = {"rows": ",".join(f"{pk}.{v}" for pk, v in rows), "s": summary.group(1)}
        current = f"{poll_url}&{urlencode(shown)}"
        if client.get(current, headers=headers).status_code != 204:
            raise RuntimeError("an up-to-date page poll is not a 204")
        row_paths = []
        for pk, _ in rows:
            fragment = client.get(f"/batches/{pk}/row/", params={"v": STALE}, headers=headers).text
            version = re.search(rf'hx-get="/batches/{pk}/row/\?v=([0-9a-f]+)"', fragment)
            if version is None:
                raise RuntimeError(f"the row poll of {pk} carries no version: {fragment[:300]}")
            row_paths += [f"/batches/{pk}/row/?v={version.group(1)}"] * 9 + [f"/batches/{pk}/row/?v={STALE}"]
        rng.shuffle(row_paths)
        # The ceiling: the same server, settings, middleware and signed-in session, a view returning
        # "ok" (ceiling_urls.py, as bench_poll_load.py), at the page poll's pace: what any view gets.
        if client.get("/bench/ceiling/").text != "ok":
            raise RuntimeError("the ceiling view is not served")
    return {PAGE: page_paths, PER_ROW: row_paths, CEILING: ["/bench/ceiling/"]}


def measure(
    args, wrk: str, workdir: Path, base: str, cookie: str, mode: str, paths: list[str], tabs: int, pids
):
    rate = tabs * RATE_PER_TAB[mode]
    connections = max(1, min(MAX_CONNECTIONS, round(rate * 0.8)))
    pause_ms = 1000 * connections / rate
    httpload.run_wrk(wrk, workdir, base, paths, cookie, 3, connections, args.timeout, pause_ms)
    cpu_before, stolen_before = httpload.process_cpu_seconds(pids), httpload.stolen_seconds()
    result = httpload.run_wrk(
        wrk, workdir, base, paths, cookie, args.seconds, connections, args.timeout, pause_ms
    )
    cpu = httpload.process_cpu_seconds(pids) - cpu_before
    stolen = httpload.stolen_seconds() - stolen_before
    share = result["rps"] / rate
    served = result["p99_us"] / 1000 <= P99_LIMIT_MS and result["errors"] == 0 and share >= MIN_SENT_SHARE
    row = {
        "tabs": tabs,
        "target_rps": rate,
        "rps": result["rps"],
        "sent_share": share,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "errors": result["errors"],
        "server_cpu_ms_per_request": 1000 * cpu / max(result["requests"], 1),
        # Of the machine's core-seconds during the run, the share its hypervisor gave to others.
        "stolen_share": stolen / (args.seconds * (os.cpu_count() or 1)),
        "served": served,
    }
    print(
        f"  {LABELS[mode]}: {tabs:,} tabs, {result['rps']:,.0f} of {rate:,.0f} requests/s, "
        f"p99 {row['p99_ms']:.0f} ms, {row['errors']} errors, {row['stolen_share']:.0%} of the cores stolen: "
        f"{'served' if served else 'NOT served'}",
        flush=True,
    )
    return row


def figures(args, ladders: dict[str, list[dict]], context: dict[str, Any]) -> dict[str, Any]:
    best = {
        mode: max((row["tabs"] for row in rows if row["served"]), default=0) for mode, rows in ladders.items()
    }
    ratio = best[PAGE] / best[PER_ROW] if best[PER_ROW] else float("inf")
    met = best[PAGE] >= GOAL_TABS
    page_top = max(args.page_tabs)
    bound = " (the top of its ladder: more may be served)" if best[PAGE] == page_top else ""
    ceiling = f" (a bare view at the same pace: {best[CEILING]:,})" if ladders.get(CEILING) else ""
    text = (
        f"largest number of open list tabs served with p99 <= {P99_LIMIT_MS:.0f} ms and no errors: "
        f"{best[PAGE]:,} with the page poll{bound}{ceiling}, {best[PER_ROW]:,} with per-row polls "
        f"({ratio:.1f}x); "
        f"goal >= {GOAL_TABS:,}: {'met' if met else 'NOT met'}"
    )
    columns = [
        "mode",
        "tabs",
        "requests/s (target)",
        "p50",
        "p99",
        "max",
        "errors",
        "server CPU/req",
        "stolen",
        "served",
    ]
    rows = [
        [
            LABELS[mode],
            f"{row['tabs']:,}",
            f"{row['rps']:,.0f} ({row['target_rps']:,.0f})",
            f"{row['p50_ms']:.0f} ms",
            f"{row['p99_ms']:.0f} ms",
            f"{row['max_ms']:.0f} ms",
            row["errors"],
            f"{row['server_cpu_ms_per_request']:.2f} ms",
            f"{row.get('stolen_share', 0):.0%}",
            "yes" if row["served"] else "no",
        ]
        for mode, mode_rows in ladders.items()
        for row in mode_rows
    ]
    return {
        "benchmark": "open_tabs",
        "title": "Open list tabs kept live by one server: the page poll vs per-row polls",
        "date": now_iso(),
        "seconds": args.seconds,
        "server": (
            f"gunicorn, {args.workers} workers x {args.threads} threads (gthread, reuse_port), DJANGO_DEBUG=0"
        ),
        "batches": args.batches,
        **context,
        "ladders": ladders,
        "best": best,
        "table": {"columns": columns, "rows": rows},
        "notes": [
            f"gunicorn {context['gunicorn']} with deploy/gunicorn.conf.py, {args.workers} workers x "
            f"{args.threads} threads, production settings (sessions in the database, the cache, change "
            f"counters and watchers in a private Redis); {args.batches:,} batches; each tab shows "
            f"/?status=in_progress: {ROWS_PER_TAB} running rows.",
            "page poll: one request per tab every 5 s with an outdated change token (a row changes every "
            "interval), so each is a full check answered with the tab's 5 changed rows (of 50) from the "
            "shared cache of rendered rows: the steady state at one change in ten rows per interval.",
            "per-row: each row of each tab polls every 5 s; 9 in 10 carry the current version (204), "
            "1 in 10 a stale one (a render), the same one change in ten.",
            "ceiling: the same server, settings, middleware and signed-in session answering a view that "
            "returns a constant (benchmarks/ceiling_urls.py), one request per tab every 5 s like the "
            "page poll: how many tabs any view could keep live on this machine under this load shape.",
            f"wrk {context['wrk']}: keep-alive connections, about 0.8 x the request rate and at most "
            f"{MAX_CONNECTIONS} (as nginx's upstream pool carries browsers' polls to gunicorn), each waiting "
            f"0.5-1.5x its share of the interval between requests (the first request of each at once); "
            f"{args.seconds} s per tab count "
            f"after 3 s at the same rate. Served: p99 <= {P99_LIMIT_MS:.0f} ms, no errors, and at least "
            f"{MIN_SENT_SHARE:.0%} of the target request rate answered. wrk shares the cores with the "
            "server. Stolen: the share of the machine's core time its hypervisor gave to other machines "
            "during that row (/proc/stat): the same row is slower when it is high.",
        ],
        "headline": {
            "name": "open list tabs served (page poll)",
            "tabs": best[PAGE],
            "baseline_tabs": best[PER_ROW],
            "ceiling_tabs": best.get(CEILING, 0),
            "ratio": ratio,
            "goal": GOAL_TABS,
            "met": met,
            "text": text,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_debian_package("wrk", "wrk")
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="bench-tabs-"))
    try:
        url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        prepare_database(url, args.batches)
        gunicorn, base, cookie = httpload.serve(
            children, workdir, url, args.workers, args.threads, USERNAME, PASSWORD
        )
        paths = tab_requests(base, cookie)
        pids = httpload.gunicorn_pids(gunicorn.pid)
        ladders: dict[str, list[dict]] = {PAGE: [], PER_ROW: [], CEILING: []}
        modes = ((PER_ROW, args.row_tabs), (PAGE, args.page_tabs), (CEILING, args.ceiling_tabs))
        for mode, ladder in modes:
            if not ladder:
                continue
            for tabs in ladder:
                print(f"{LABELS[mode]}: {tabs:,} tabs, {args.seconds} s ...", flush=True)
                row = measure(args, wrk, workdir, base, cookie, mode, paths[mode], tabs, pids)
                ladders[mode].append(row)
                if not row["served"]:
                    break
        if gunicorn.poll() is not None:
            raise RuntimeError(f"gunicorn exited during the run:\n{(workdir / 'gunicorn.log').read_text()}")
        context = httpload.run_context(wrk, workdir)
        data = figures(args, ladders, context)
        benchlib.print_report(data, header=[f"server:    {data['server']}"])
        write_json(args.json, data)
    finally:
        children.close()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
