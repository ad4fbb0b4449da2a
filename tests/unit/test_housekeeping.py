"""Housekeeping (housekeeping/): thinning finished batches' snapshots so that their charts look the same,
each retention setting, --dry-run, sessions, and SQLite giving pages back."""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt, AccessLog
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.models import AuditEvent
from alerts.models import Channel, Delivery, WebhookReceipt
from batches import charts, history, selectors_history
from batches.models import Batch, BatchStatusChange, BulkCancel, BulkCancelItem, ProgressSnapshot
from housekeeping import services, sqlite, thinning
from tests.support.factories import make_batch, make_user

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
START = NOW - timedelta(hours=6)


def run(**options) -> services.Report:
    return services.run(now=NOW, **options)


def with_history(status: str = "completed", *, points: int = 2000, seed: int = 1) -> Batch:
    """A batch with a snapshot at every 5 s refresh while it ran, the way the sync writes them: a
    validating start at zero, progress at a wandering rate with a stall in the middle, then its end."""
    rng = random.Random(seed)
    total = max(50_000, 40 * points)  # never reached: every snapshot has counts of its own
    running_at = START + timedelta(minutes=2)
    batch = make_batch(
        status=status,
        created_at=START,
        in_progress_at=running_at,
        total_requests=total,
        completed_requests=0,
        failed_requests=0,
    )
    rows = [ProgressSnapshot(batch=batch, taken_at=START, completed=0, failed=0, total=0)]
    completed = failed = 0
    at = running_at
    for index in range(points):
        at += timedelta(seconds=5)
        stalled = points // 3 <= index < points // 3 + 120
        step = 0 if stalled else max(1, int(rng.gauss(25, 8)))
        if not step:
            continue
        completed = min(completed + step, total - failed)
        failed += rng.random() < 0.05
        rows.append(
            ProgressSnapshot(batch=batch, taken_at=at, completed=completed, failed=failed, total=total)
        )
    ProgressSnapshot.objects.bulk_create(rows)
    Batch.objects.filter(pk=batch.pk).update(
        completed_requests=completed,
        failed_requests=failed,
        completed_at=at if status == "completed" else None,
    )
    for old, new, moment in (("", "validating", START), ("validating", "in_progress", running_at)):
        BatchStatusChange.objects.create(batch=batch, old_status=old, new_status=new, observed_at=moment)
    if status == "completed":
        BatchStatusChange.objects.create(
            batch=batch, old_status="in_progress", new_status=status, observed_at=at
        )
    batch.refresh_from_db()
    return batch


def stored(batch: Batch) -> list[tuple[datetime, int, int, int]]:
    return [(s.at, s.completed, s.failed, s.total) for s in history.snapshots(batch)]


def polyline(svg: str) -> list[tuple[float, float]]:
    first = re.search(r'<polyline[^>]* points="([^"]+)"', svg)
    assert first is not None
    return [tuple(map(float, pair.split(","))) for pair in first.group(1).split()]  # type: ignore[misc]


def height_at(line: list[tuple[float, float]], x: float) -> float:
    for (x0, y0), (x1, y1) in itertools.pairwise(line):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return line[-1][1]


# --- thinning ------------------------------------------------------------------------------------


def test_thinning_keeps_the_first_the_last_and_every_status_change_moment():
    batch = with_history()
    before = stored(batch)
    changes = list(BatchStatusChange.objects.filter(batch=batch).values_list("observed_at", flat=True))

    run()

    after = stored(batch)
    assert charts.THROUGHPUT_BUCKETS <= len(after) <= thinning.LIMIT < len(before)
    assert after[0] == before[0] and after[-1] == before[-1]
    kept_times = {row[0] for row in after}
    for moment in changes:
        at_or_after = next(row for row in before if row[0] >= moment)
        assert at_or_after[0] in kept_times
    # The first point of the running phase, where the charts' time axis starts, is kept too.
    assert min(t for t in kept_times if t >= batch.in_progress_at) == min(
        row[0] for row in before if row[0] >= batch.in_progress_at
    )
    batch.refresh_from_db()
    assert batch.snapshots_thinned_at == NOW


def test_running_batches_keep_every_snapshot():
    running = with_history(status="in_progress")
    finalizing = with_history(status="finalizing", seed=2)
    counts = {b.pk: b.snapshots.count() for b in (running, finalizing)}

    report = run()

    assert {b.pk: b.snapshots.count() for b in (running, finalizing)} == counts
    assert report.steps[1].removed == 0
    assert not Batch.objects.filter(snapshots_thinned_at__isnull=False).exists()


def test_thinning_twice_removes_nothing_more():
    batch = with_history()
    run()
    kept = stored(batch)
    Batch.objects.filter(pk=batch.pk).update(snapshots_thinned_at=None)
    assert run().steps[1].removed == 0
    assert stored(batch) == kept


def test_the_charts_of_a_thinned_batch_are_drawn_from_its_thinned_points_and_look_the_same(monkeypatch):
    monkeypatch.setattr(history, "MAX_POINTS", 10_000)  # "before" drawn from every stored point
    batch = with_history()
    original = stored(batch)
    before = selectors_history.batch_history(batch, NOW)
    rates_before = charts.throughput_rates(history.progress_points(batch, history.snapshots(batch)))

    run()

    batch.refresh_from_db()
    after = selectors_history.batch_history(batch, NOW)
    thinned = history.snapshots(batch)
    # Drawn from what is stored now: the detail page counts the thinned points.
    assert after.count == len(thinned) < before.count == len(original)
    assert after.progress == charts.progress_svg(
        [(s.at, s.completed, s.failed, s.total) for s in thinned],
        until=None,
        label=f"Percent of the requests of {batch.batch_id} done and failed over time",
    )
    # ... and look the same: the progress line within half a pixel everywhere (of a 480-wide drawing),
    line_before, line_after = polyline(before.progress), polyline(after.progress)
    assert line_after[0][0] == line_before[0][0] and line_after[-1][0] == line_before[-1][0]
    worst = max(abs(height_at(line_after, x) - y) for x, y in line_before)
    assert worst < 0.5
    # and the throughput chart exactly the same: its 48 buckets keep the points either side of each edge.
    assert after.throughput == before.throughput
    rates_after = charts.throughput_rates(history.progress_points(batch, thinned))
    assert rates_after == rates_before
    assert min(rate for *_, rate in rates_after) < 0.02 * max(rate for *_, rate in rates_after)  # the stall


def test_a_steady_batch_keeps_little_more_than_the_throughput_buckets_edges():
    points = [thinning.Point(i, START + timedelta(seconds=5 * i), 10 * i, 0, 100_000) for i in range(5000)]
    kept = thinning.points_to_keep(points)
    assert len(kept) <= 2 * (charts.THROUGHPUT_BUCKETS + 1)


def test_a_history_that_bends_everywhere_is_capped_at_the_limit():
    rng = random.Random(3)
    done, points = 0, []
    for i in range(9000):
        done += rng.choice((0, 0, 0, 400))
        points.append(thinning.Point(i, START + timedelta(seconds=5 * i), done, 0, 10_000_000))
    assert len(thinning.points_to_keep(points)) <= thinning.LIMIT


# --- retention settings ---------------------------------------------------------------------------


def audit_at(days_ago: float) -> AuditEvent:
    return AuditEvent.objects.create(at=NOW - timedelta(days=days_ago), action="sign_in", actor_name="ana")


@pytest.mark.parametrize(
    ("days", "kept"), [(400, {1, 399}), (30, {1}), (0, {1, 399, 401, 5000})], ids=["default", "30", "0"]
)
def test_audit_events_are_kept_for_their_retention_and_0_keeps_them_for_ever(settings, days, kept):
    settings.DASHBOARD_AUDIT_RETENTION_DAYS = days
    for age in (1, 399, 401, 5000):
        audit_at(age)
    run()
    ages = {
        round((NOW - at).total_seconds() / 86400) for at in AuditEvent.objects.values_list("at", flat=True)
    }
    assert ages == kept


def delivery(batch: Batch, channel: Channel, event: str, state: str, days_ago: float) -> Delivery:
    at = NOW - timedelta(days=days_ago)
    return Delivery.objects.create(
        channel=channel, batch=batch, event=event, state=state, next_attempt_at=at, created_at=at
    )


@pytest.mark.parametrize(("days", "left"), [(90, 3), (10, 2), (0, 5)], ids=["default", "10", "0"])
def test_sent_and_given_up_deliveries_go_after_their_retention_and_0_keeps_them(settings, days, left):
    settings.DASHBOARD_ALERT_DELIVERY_RETENTION_DAYS = days
    channel = Channel.objects.create(kind="email", email="team@example.com")
    batch = make_batch(status="completed")
    delivery(batch, channel, "completed", "sent", 91)
    delivery(batch, channel, "failed", "failed", 91)
    delivery(batch, channel, "expired", "pending", 200)  # still to send: never removed
    delivery(batch, channel, "cancelled", "sent", 20)
    delivery(batch, channel, "stalled", "sent", 1)
    run()
    assert Delivery.objects.count() == left
    assert Delivery.objects.filter(state="pending").count() == 1


def bulk_cancel(key: str, *, finished_days_ago: float | None, items: int = 3) -> BulkCancel:
    bulk = BulkCancel.objects.create(
        idempotency_key=key,
        created_at=NOW - timedelta(days=400),
        selection=key,
        finished_at=None if finished_days_ago is None else NOW - timedelta(days=finished_days_ago),
    )
    for _ in range(items):
        BulkCancelItem.objects.create(bulk=bulk, batch=make_batch(status="cancelled"), state="cancelled")
    return bulk


@pytest.mark.parametrize(("days", "left"), [(90, ["recent", "running"]), (0, ["old", "recent", "running"])])
def test_finished_bulk_cancels_go_with_their_items_after_their_retention_and_0_keeps_them(
    settings, monkeypatch, days, left
):
    settings.DASHBOARD_BULK_CANCEL_RETENTION_DAYS = days
    monkeypatch.setattr(services, "CHUNK", 2)  # the old request's 3 items take two chunks
    bulk_cancel("old", finished_days_ago=91)
    bulk_cancel("recent", finished_days_ago=10)
    bulk_cancel("running", finished_days_ago=None)  # still working: never removed
    assert run(dry_run=True).removed == (1 if days else 0)
    assert BulkCancel.objects.count() == 3
    run()
    assert sorted(BulkCancel.objects.values_list("selection", flat=True)) == left
    assert BulkCancelItem.objects.count() == 3 * len(left)
    assert Batch.objects.count() == 9  # the batches themselves are kept


def test_webhook_receipts_go_once_past_the_replay_window_and_retries_margin():
    for hours in (1, 71, 73, 24 * 30):
        WebhookReceipt.objects.create(
            webhook_id=f"msg_{hours}", event_type="batch.completed", received_at=NOW - timedelta(hours=hours)
        )
    run()
    assert sorted(WebhookReceipt.objects.values_list("webhook_id", flat=True)) == ["msg_1", "msg_71"]


def test_sign_in_records_go_after_their_cool_off(settings):
    settings.AXES_COOLOFF_TIME = 0.25  # hours
    for minutes in (5, 20):
        AccessAttempt.objects.create(
            username=f"u{minutes}",
            ip_address="10.0.0.1",
            user_agent="t",
            get_data="",
            post_data="",
            http_accept="",
            path_info="/login/",
            failures_since_start=5,
        )
        AccessAttempt.objects.filter(username=f"u{minutes}").update(
            attempt_time=NOW - timedelta(minutes=minutes)
        )
    for hours in (1, 13):
        log = AccessLog.objects.create(
            username=f"l{hours}", ip_address="10.0.0.1", user_agent="t", http_accept="", path_info="/login/"
        )
        AccessLog.objects.filter(pk=log.pk).update(attempt_time=NOW - timedelta(hours=hours))
    run()
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["u5"]
    # Sign-in logs outlive the longest session (DJANGO_SESSION_HOURS, 12 by default).
    assert list(AccessLog.objects.values_list("username", flat=True)) == ["l1"]


def test_the_retention_settings_are_parsed_strictly(monkeypatch):
    import importlib

    from dashboard import settings as module
    from dashboard.env import ImproperlyConfiguredEnv

    try:
        for name, bad in (
            ("DASHBOARD_AUDIT_RETENTION_DAYS", "-1"),
            ("DASHBOARD_AUDIT_RETENTION_DAYS", "a year"),
            ("DASHBOARD_ALERT_DELIVERY_RETENTION_DAYS", "1.5"),
            ("DASHBOARD_BULK_CANCEL_RETENTION_DAYS", "-7"),
            ("DASHBOARD_HOUSEKEEPING_MINUTES", "0"),
        ):
            monkeypatch.setenv(name, bad)
            with pytest.raises(ImproperlyConfiguredEnv, match=name):
                importlib.reload(module)
            monkeypatch.delenv(name)
        monkeypatch.setenv("DASHBOARD_AUDIT_RETENTION_DAYS", "0")
        monkeypatch.setenv("DASHBOARD_ALERT_DELIVERY_RETENTION_DAYS", "30")
        importlib.reload(module)
        assert module.DASHBOARD_AUDIT_RETENTION_DAYS == 0
        assert module.DASHBOARD_ALERT_DELIVERY_RETENTION_DAYS == 30
        assert module.CELERY_BEAT_SCHEDULE["housekeeping"]["schedule"] == 3600
    finally:
        monkeypatch.delenv("DASHBOARD_AUDIT_RETENTION_DAYS", raising=False)
        monkeypatch.delenv("DASHBOARD_ALERT_DELIVERY_RETENTION_DAYS", raising=False)
        importlib.reload(module)


# --- the command, sessions, SQLite ----------------------------------------------------------------


def something_of_everything() -> None:
    with_history()
    audit_at(1000)
    WebhookReceipt.objects.create(webhook_id="msg_old", event_type="x", received_at=NOW - timedelta(days=9))
    Session.objects.create(session_key="k" * 32, session_data="", expire_date=NOW - timedelta(days=1))


def counts() -> dict[str, int]:
    return {
        "snapshots": ProgressSnapshot.objects.count(),
        "audit": AuditEvent.objects.count(),
        "receipts": WebhookReceipt.objects.count(),
        "sessions": Session.objects.count(),
        "thinned": Batch.objects.filter(snapshots_thinned_at__isnull=False).count(),
    }


def test_the_command_with_dry_run_counts_what_it_would_remove_and_removes_nothing():
    something_of_everything()
    before = counts()
    out = StringIO()
    call_command("housekeeping", "--dry-run", stdout=out)
    assert counts() == before
    text = out.getvalue()
    assert "sessions: would remove 1 expired sessions" in text
    assert "audit events: would remove 1 audit events" in text
    assert "webhook receipts: would remove 1 webhook receipts" in text
    would = int(re.search(r"snapshots: would remove ([\d,]+)", text).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert would > 1000

    out = StringIO()
    call_command("housekeeping", stdout=out)
    assert f"snapshots: removed {would:,} progress snapshots" in out.getvalue()
    assert counts() == {
        "snapshots": before["snapshots"] - would,
        "audit": 0,
        "receipts": 0,
        "sessions": 0,
        "thinned": 1,
    }


def test_a_cleared_session_is_signed_out_everywhere(client, django_user_model):
    from django.test import Client

    user = make_user("ana")
    laptop, phone = Client(), Client()
    laptop.force_login(user)
    phone.force_login(user)
    batch = make_batch()
    for browser in (laptop, phone):
        assert browser.get("/").status_code == 200
    # The laptop's session runs out; housekeeping clears it from the one table every process reads.
    laptop_key = laptop.session.session_key
    Session.objects.filter(session_key=laptop_key).update(expire_date=timezone.now() - timedelta(seconds=1))
    services.run()
    assert not Session.objects.filter(session_key=laptop_key).exists()
    page, poll = laptop.get("/"), laptop.get(f"/batches/{batch.pk}/row/", HTTP_HX_REQUEST="true")
    assert page.status_code == 302 and page["Location"].startswith("/login/")
    # htmx is sent to the sign-in page (django-htmx's HX-Redirect) rather than given the row.
    assert poll.status_code == 200 and poll["HX-Redirect"].startswith("/login/")
    assert b"<tr" not in poll.content
    assert phone.get("/").status_code == 200


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own file")
def test_sqlite_gives_the_pages_of_thinned_snapshots_back(transactional_db):
    assert sqlite.auto_vacuum_mode() == 2  # a new database is made incremental from the start
    for seed in range(3):
        with_history(points=6000, seed=seed)

    def pages() -> int:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA page_count")
            return int(cursor.fetchone()[0])

    grown = pages()
    run()  # thins, then vacuums incrementally
    assert sqlite.free_pages() == 0
    assert pages() < grown * 0.8  # the file itself shrank
    report = run()
    assert report.steps[-1].name == "sqlite"
    # The planner's statistics come from a sample, not from every row under the write lock.
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA analysis_limit")
        assert cursor.fetchone()[0] == sqlite.ANALYSIS_LIMIT
        cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'batches_progresssnapshot'")
        assert cursor.fetchall()  # and there are statistics


def test_the_task_runs_once_per_interval_however_many_ticks_reach_it(redis_settings):
    import redis as redis_client

    from housekeeping import tasks

    client = redis_client.Redis.from_url(redis_settings)
    client.delete(tasks.DONE, tasks.LOCK)
    something_of_everything()
    first, second = tasks.housekeeping(), tasks.housekeeping()
    assert "sessions: removed 1 expired sessions" in first
    assert second == "skipped: already run in this interval"
    assert 0 < client.ttl(tasks.DONE) <= 3600
    # While another run holds the lock, a tick does nothing at all.
    client.delete(tasks.DONE)
    lock = client.lock(tasks.LOCK, timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert tasks.housekeeping() == "skipped: another run holds the lock"
    finally:
        lock.release()
    client.delete(tasks.DONE)


def test_it_deletes_in_chunks_each_its_own_short_statement(monkeypatch):
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(services, "CHUNK", 10)
    Session.objects.bulk_create(
        Session(session_key=f"{i:032d}", session_data="", expire_date=NOW - timedelta(hours=1))
        for i in range(35)
    )
    with CaptureQueriesContext(connection) as captured:
        removed, _ = services.clear_sessions(NOW, False, services._Budget(None, None))
    deletes = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("DELETE")]
    assert removed == 35 and len(deletes) == 4
    assert not Session.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's own indexes")
def test_postgresql_rebuilds_snapshot_indexes_left_bloated_by_thinning(transactional_db, monkeypatch):
    from housekeeping import postgres

    for seed in range(3):
        with_history(points=6000, seed=seed)
    monkeypatch.setattr(postgres, "MINIMUM_BYTES", 0)

    def sizes() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
                "WHERE relname = 'batches_progresssnapshot'"
            )
            return dict(cursor.fetchall())

    full = sizes()
    monkeypatch.setattr(postgres, "BLOATED_BYTES_PER_ROW", 10**9)
    run()  # thins; nothing counts as bloated yet
    assert sizes() == full
    monkeypatch.setattr(postgres, "BLOATED_BYTES_PER_ROW", 100)
    assert {name for name, _ in postgres.bloated_indexes()} == set(full)
    assert postgres.rebuild_bloated_indexes() > 0
    assert all(size < full[name] / 3 for name, size in sizes().items())


def test_a_running_batch_with_more_snapshots_than_a_chart_needs_is_drawn_from_an_even_sample(
    monkeypatch, django_assert_num_queries
):
    batch = with_history("in_progress", points=3000)
    every = history.snapshots(batch, limit=10_000)
    monkeypatch.setattr(history, "MAX_POINTS", 400)
    with django_assert_num_queries(1):
        sample = history.snapshots(batch)
    assert 200 <= len(sample) <= 402  # every k-th with k = ceil(count / 400), and the last
    assert (sample[0], sample[-1]) == (every[0], every[-1])  # the first and the latest moment
    assert sample == sorted(sample, key=lambda s: s.at)
    assert set(sample) <= set(every)
    # Drawn from the sample, the progress line stays within a pixel of the line of every point.
    full = polyline(charts.progress_svg([(s.at, s.completed, s.failed, s.total) for s in every], until=NOW))
    drawn = polyline(selectors_history.batch_history(batch, NOW).progress)
    assert max(abs(height_at(drawn, x) - y) for x, y in full) < 1.0


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's one write lock")
def test_on_sqlite_housekeeping_pauses_after_each_chunk_as_long_as_it_took_so_a_sync_gets_the_lock(
    monkeypatch,
):
    pauses: list[float] = []
    clock = iter([100.0, 100.03, 100.03, 100.5, 100.5])  # chunks of 30 ms, then 470 ms
    fake_time = type("FakeTime", (), {"sleep": staticmethod(pauses.append), "monotonic": lambda: next(clock)})
    monkeypatch.setattr(services, "time", fake_time)
    budget = services._Budget(None, None)
    budget.tick()
    budget.tick()
    assert pauses == [pytest.approx(0.03), services.MAX_PAUSE_SECONDS]
