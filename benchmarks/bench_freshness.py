"""How fresh is an open page: from a change in the API (the simulator) to its appearance in Chromium.

    DJANGO_DEBUG=1 uv run python benchmarks/bench_freshness.py [--changes 50] [--finishes 50]
        [--batches 400] [--gap-min 3] [--gap-max 12] [--change-timeout 90] [--max-minutes 40] [--no-push]
        [--json PATH]

Run on demand; it is not part of the test suite, and with the defaults it takes about 8 minutes. It
starts the whole stack as the browser tests do, on loopback, against a fresh SQLite file in a temporary
directory, with the DEFAULT settings (issue 16: a watched connection refreshes its active batches every
5 s, beat's dispatcher starting each refresh within a second of its due time; the open page polls
once every 5 s, just after the next refresh when it knows when that is):

  simulator    a thread of this process, SimWorld(seed=1, batches=--batches, speed=0): a frozen clock
               that moves only when the benchmark advances it
  Redis        redis-server on a free port (the system package; installed when missing), started by
               benchlib.start_redis: Celery's broker and the locks (REDIS_URL) and, as in
               production, Django's cache every process shares (DASHBOARD_CACHE_REDIS_URL)
  Celery       a worker (prefork, concurrency 2, as `make run`) and beat, as subprocesses
  web          `manage.py runserver --noreload --insecure` with DJANGO_DEBUG=0 (runserver, as `make run`,
               because it serves the static files the page needs; --insecure lets it with DEBUG off)
  events       the push doorbell's events server as deployed (gunicorn's ASGI worker with
               deploy/gunicorn_events.conf.py) on a port of its own, as `make run` starts it: the page
               keeps an EventSource open to it and polls at once when its connection changes
               (--no-push leaves it out: the page then polls on its 5 s timer alone, the baseline)
  Chromium     headless (Playwright, /usr/bin/chromium), signed in, showing /?status=in_progress

After the first full sync, --changes times, at random intervals of --gap-min..--gap-max seconds (so
that a change falls anywhere in the refresh cycle, not just after the last one): pick a running batch
on the page that no measurement is waiting for (one of the faster half, so that the clock moves
little), advance the simulator's clock second by second until
that batch's completed count changes (read from /_sim/state), note the time, then watch the row in
the page (locator.inner_text every 0.1 s, no script evaluation: the CSP forbids eval) until it shows
a completed count at least the new one. Counts only grow, so a later change cannot be mistaken for
this one. Several measurements may be pending at once; each is independent. The database is watched
too, which splits each delay into the sync's share (change -> row in the database) and the page's
(database -> screen).

Then, side by side in the same run, with webhooks: the simulator (simulator/webhooks.py) posts a signed
OpenAI-style webhook to the dashboard's endpoint (/webhooks/openai/<connection>/) for every batch that
finishes, and --finishes times a running batch on the page is brought to its end and timed until the
row shows its final status: the clock advanced to its planned outcome (/_sim/plan) when that is at
most NATURAL_END_S ahead, else the batch cancelled through the API (batch.cancelled) and the clock
advanced past its short cancelling time, so that the page does not run out of running batches. Polling goes on
meanwhile, as the fallback. Finishes are what webhooks announce; progress has no webhook.

The headlines are p95 of the delays; the goals (issue 16) are p95 <= 8 s without webhooks and <= 3 s
with them. A change not seen within
--change-timeout seconds counts as that long and is reported. The run stops by itself after
--max-minutes at the latest and stops every process it started, whatever happens.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import random
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (
    Children,
    cache_keys,
    describe_machine,
    ensure_debian_package,
    free_port,
    print_report,
    production_env,
    setup_django,
    start_redis,
    write_json,
)
from freshness_report import CANCEL_DELAY_S, NATURAL_END_S, Change, figures
from livestack import Simulator, start_stack

WEBHOOK_SECRET_ENV = "OPENAI_WEBHOOK_SECRET"
KEY_ENV = "BENCH_FRESHNESS_API_KEY"
KEY = "sk-bench-freshness"
USERNAME = "bench-watcher"
PASSWORD = "bench-watcher-password-1"
SEED = 1
POLL_SECONDS = 0.1
CHROMIUM = "/usr/bin/chromium"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=50, help="changes to measure (default 50)")
    parser.add_argument(
        "--finishes", type=int, default=50, help="batches finished with webhooks on (default 50)"
    )
    parser.add_argument(
        "--batches",
        type=int,
        default=400,
        help="simulated batches (default 400: enough running ones for 50 changes and 50 finishes)",
    )
    parser.add_argument(
        "--gap-min", type=float, default=3.0, help="shortest wait between changes, s (default 3)"
    )
    parser.add_argument(
        "--gap-max", type=float, default=12.0, help="longest wait between changes, s (default 12)"
    )
    parser.add_argument(
        "--change-timeout",
        type=float,
        default=90.0,
        help="give up on one change after this many s (default 90)",
    )
    parser.add_argument(
        "--max-minutes", type=float, default=40.0, help="stop the whole run after this (default 40)"
    )
    parser.add_argument(
        "--no-push",
        action="store_true",
        help="without the events server: the page polls on its timer alone (the baseline)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if (
        args.changes < 1
        or args.batches < 20
        or not 0 <= args.gap_min <= args.gap_max
        or args.max_minutes <= 0
    ):
        parser.error("--changes >= 1, --batches >= 20, 0 <= --gap-min <= --gap-max, --max-minutes > 0")
    return args


# --- measuring -----------------------------------------------------------------------------------------


def completed(batch: dict) -> int:
    return int((batch.get("request_counts") or {}).get("completed") or 0)


def make_change(sim: Simulator, batch_id: str) -> tuple[int, int, float, float] | None:
    """Advance the clock until `batch_id`'s completed count changes: (before, after, advanced, when)."""
    before = completed(sim.batches()[batch_id])
    step, advanced = 1.0, 0.0
    for attempt in range(60):
        if attempt and attempt % 10 == 0:
            step *= 3
        sim.advance(step)
        when = time.monotonic()
        advanced += step
        batch = sim.batches()[batch_id]
        if completed(batch) != before:
            return before, completed(batch), advanced, when
        if batch["status"] != "in_progress":
            return None
    return None


def shown_count(page, pk: int) -> int | None:
    texts = page.locator(f"#batch-{pk} .n-completed").all_inner_texts()
    if not texts:
        return None
    with contextlib.suppress(ValueError):
        return int(texts[0].strip().replace(",", ""))
    return None


def candidates(page, sim: Simulator, pks: dict[str, int], busy: set[str]) -> list[str]:
    """Running batches that can still progress, shown on the page and polling, not being measured;
    the faster half of them (by requests done per second so far), so that a change needs only a short
    advance of the clock, which moves every other batch too."""
    state = sim.state()
    now = state["sim_now"]
    found = []
    for batch in state["batches"]:
        batch_id, counts = batch["id"], batch.get("request_counts") or {}
        if (
            batch["status"] == "in_progress"
            and batch_id in pks
            and batch_id not in busy
            and counts.get("total", 0) > counts.get("completed", 0) + counts.get("failed", 0)
            and page.locator(f"#batch-{pks[batch_id]}[data-live]").count() == 1
        ):
            running = max(now - (batch.get("in_progress_at") or now), 1)
            found.append((counts.get("completed", 0) / running, batch_id))
    found.sort(reverse=True)
    return [batch_id for _, batch_id in found[: max(1, (len(found) + 1) // 2)]]


def measure(args, page, sim: Simulator, deadline: float) -> tuple[list[Change], int]:
    from batches.models import Batch

    rng = random.Random(SEED)
    pks = dict(Batch.objects.values_list("batch_id", "pk"))
    pending: list[Change] = []
    finished: list[Change] = []
    skipped = 0
    next_change = time.monotonic() + rng.uniform(args.gap_min, args.gap_max)
    started = 0
    while (started < args.changes or pending) and time.monotonic() < deadline:
        now = time.monotonic()
        if started < args.changes and now >= next_change:
            choices = candidates(page, sim, pks, {change.batch_id for change in pending})
            made = None
            rng.shuffle(choices)
            for batch_id in choices[:5]:
                made = make_change(sim, batch_id)
                if made:
                    before, after, advanced, when = made
                    pending.append(Change(batch_id, pks[batch_id], before, after, advanced, when))
                    started += 1
                    break
                skipped += 1
            if not choices:
                raise RuntimeError("no running batch left on the page to change; use fewer --changes")
            next_change = time.monotonic() + rng.uniform(args.gap_min, args.gap_max)
        if pending:
            in_db = dict(
                Batch.objects.filter(pk__in=[change.pk for change in pending]).values_list(
                    "pk", "completed_requests"
                )
            )
            for change in list(pending):
                now = time.monotonic()
                if change.db_at is None and in_db.get(change.pk, 0) >= change.after:
                    change.db_at = now
                shown = shown_count(page, change.pk)
                if shown is not None and shown >= change.after:
                    change.seen_at = time.monotonic()
                    if change.db_at is None:
                        change.db_at = change.seen_at
                elif now - change.at > args.change_timeout:
                    change.timed_out = True
                if change.seen_at is not None or change.timed_out:
                    pending.remove(change)
                    finished.append(change)
                    state = "TIMED OUT" if change.timed_out else f"{change.delay:5.1f} s"
                    print(
                        f"  change {len(finished):>3}/{args.changes}: {change.batch_id[:24]} "
                        f"{change.before} -> {change.after} (+{change.advanced_s:g} simulated s): {state}",
                        flush=True,
                    )
        time.sleep(POLL_SECONDS)
    for change in pending:  # the deadline came first
        change.timed_out = True
        finished.append(change)
    return finished, skipped


def shown_status(page, pk: int) -> str:
    texts = page.locator(f"#batch-{pk} .badge").all_inner_texts()
    return texts[0].strip() if texts else ""


def finish_candidates(page, sim: Simulator, pks: dict[str, int]) -> list[tuple[float, str]]:
    """Running batches on the page, in the poll, by how soon (simulated seconds) they reach their end."""
    state = sim.state()
    now = state["sim_now"]
    running = [
        batch["id"]
        for batch in state["batches"]
        if batch["status"] == "in_progress"
        and batch["id"] in pks
        and page.locator(f"#batch-{pks[batch['id']]}[data-live]").count() == 1
    ]
    return sorted((sim.plan(batch_id)["final_at"] - now, batch_id) for batch_id in running[:20])


def measure_finishes(args, page, sim: Simulator, deadline: float) -> list[Change]:
    """One at a time: bring a running batch on the page to its end, and time its row's final status.
    The batch nearest its own end is taken there when it is within NATURAL_END_S; otherwise it is
    cancelled through the API and taken past its (short) cancelling time: moving the clock hours
    ahead to reach natural ends would end every other running batch too, and the page would run out
    of batches to finish (a run once stopped at 25 of 50)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    from batches.models import Batch

    rng = random.Random(SEED + 1)
    finished: list[Change] = []
    while len(finished) < args.finishes and time.monotonic() < deadline:
        pks = dict(Batch.objects.values_list("batch_id", "pk"))
        choices = finish_candidates(page, sim, pks)
        if not choices:
            # Every running row on the page has finished: a fresh page shows the ones still running.
            page.reload()
            with contextlib.suppress(PlaywrightTimeoutError):
                page.locator("#batch-table tbody tr[data-live]").first.wait_for(timeout=30_000)
            if not finish_candidates(page, sim, pks):
                # Report what was measured rather than nothing: the figures say how many finishes.
                print(f"  no running batch left to finish after {len(finished)}; stopping", flush=True)
                break
            continue
        wait, batch_id = choices[0]
        how = "its end"
        if wait > NATURAL_END_S:
            sim.cancel(batch_id, KEY)
            wait = sim.plan(batch_id)["final_at"] - sim.state()["sim_now"]
            how = "cancelled"
        sim.advance(max(wait, 0) + 1)
        change = Change(batch_id, pks[batch_id], 0, 1, max(wait, 0) + 1, time.monotonic(), how=how)
        final = sim.batches()[batch_id]["status"]
        while change.seen_at is None and not change.timed_out:
            now = time.monotonic()
            stored = Batch.objects.filter(pk=change.pk).values_list("status", flat=True).first()
            if change.db_at is None and stored == final:
                change.db_at = now
            if shown_status(page, change.pk) == final.replace("_", " "):
                change.seen_at = time.monotonic()
                change.db_at = change.db_at or change.seen_at
            elif now - change.at > args.change_timeout:
                change.timed_out = True
            time.sleep(POLL_SECONDS)
        finished.append(change)
        state = "TIMED OUT" if change.timed_out else f"{change.delay:5.1f} s"
        print(
            f"  finish {len(finished):>3}/{args.finishes}: {batch_id[:24]} -> {final} ({how}): {state}",
            flush=True,
        )
        time.sleep(rng.uniform(args.gap_min, args.gap_max))
    return finished


# --- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(CHROMIUM).exists():
        ensure_debian_package("chromium", "chromium")
    deadline = time.monotonic() + args.max_minutes * 60
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    server = sim = None
    try:
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        web_port, events_port = free_port(), free_port()
        # Without push no page looks for an events server (LIVE_EVENTS_URL empty).
        push = {"LIVE_EVENTS_URL": ""}
        if not args.no_push:
            push = {
                "LIVE_EVENTS_URL": f"http://127.0.0.1:{events_port}/live/events/",
                "LIVE_EVENTS_ALLOWED_ORIGINS": f"http://127.0.0.1:{web_port}",
                "DASHBOARD_EVENTS_BIND": f"127.0.0.1:{events_port}",
            }
        env = production_env(
            database_url,
            start_redis(),
            # The connection is the simulator on loopback, an internal address.
            DASHBOARD_ALLOW_INTERNAL_API_URLS="1",
            **push,
            **{
                KEY_ENV: KEY,
                WEBHOOK_SECRET_ENV: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
            },
        )
        os.environ.update(env)  # this process reads the same database with the same settings
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # ORM calls beside Playwright's sync API
        setup_django(database_url)
        from django.contrib.auth import get_user_model

        from accounts.roles import VIEWER, set_role
        from batches.models import Batch, Connection
        from simulator import SimWorld, start_in_thread
        from simulator.webhooks import WebhookSender

        # A short cancelling time: finishes by cancellation move the clock little (measure_finishes).
        world = SimWorld(seed=SEED, batches=args.batches, speed=0, cancel_delay=CANCEL_DELAY_S)
        server, base_url = start_in_thread(world)
        sim = Simulator(base_url)
        Connection.objects.filter(from_environment=True).update(enabled=False)
        Connection.objects.create(
            name="simulated", base_url=base_url, api_key_env=KEY_ENV
        )  # default intervals
        user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
        set_role(user, VIEWER)

        print("starting the Celery worker and beat, and the web server ...", flush=True)
        start_stack(children, workdir, env, web_port, events=not args.no_push)
        wanted = len(sim.batches())
        until = time.monotonic() + 120
        while Batch.objects.count() < wanted:
            if time.monotonic() > until:
                log = (workdir / "worker.log").read_text(errors="replace")
                raise RuntimeError(f"the first full sync did not finish:\n{log[-3000:]}")
            time.sleep(0.5)
        print(f"first sync done: {wanted} batches in the database", flush=True)

        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-component-update",
                ],
            )
            try:
                page = browser.new_context().new_page()
                base = f"http://127.0.0.1:{web_port}"
                page.goto(f"{base}/login/?next=/%3Fstatus%3Din_progress")
                page.fill("input[name=username]", USERNAME)
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(re.compile(r".*/\?status=in_progress$"))
                page.locator("#batch-table tbody tr[data-live]").first.wait_for(timeout=30_000)
                rows = page.locator("#batch-table tbody tr[data-live]").count()
                # The page's filter menus are cached for a minute: none in Redis means the web server's cache
                # misses, which is not how production runs.
                if not cache_keys("*batches:*"):
                    raise RuntimeError("the web server wrote nothing to the cache in the private Redis")
                print(f"page open with {rows} polling rows; measuring {args.changes} changes ...", flush=True)
                changes, skipped = measure(args, page, sim, deadline)
                print(f"webhooks on; measuring {args.finishes} finishes ...", flush=True)
                hook = f"{base}/webhooks/openai/simulated/"
                sender = WebhookSender(world, hook, env[WEBHOOK_SECRET_ENV], interval=0.1).start()
                try:
                    finishes = measure_finishes(args, page, sim, deadline)
                finally:
                    sender.stop()
                print(f"webhooks: {sender.delivered} delivered, {sender.failed} failed", flush=True)
            finally:
                browser.close()
        context = {"machine": describe_machine(), "django": __import__("django").get_version()}
        data = figures(args, changes, skipped, context, finishes)
        print_report(data)
        write_json(args.json, data)
    finally:
        if sim is not None:
            sim.close()
        if server is not None:
            from simulator import stop

            stop(server)
        children.close()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
