"""Housekeeping: what the dashboard no longer needs is removed, in small steps.

Run once an hour by beat (housekeeping/tasks.py) and by hand with `manage.py housekeeping
[--dry-run]`. Every step deletes in chunks of at most CHUNK rows, each its own short transaction, so
that on SQLite a sync waiting to write never waits long behind it (benchmarks/bench_year.py measures
the longest wait). Batches themselves, with their raw JSON, are the history and are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from axes.helpers import get_cool_off
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection as default_connection
from django.db import models, transaction
from django.utils import timezone

from accounts.models import AuditEvent
from alerts.models import Delivery, WebhookReceipt
from alerts.signing import REPLAY_TOLERANCE
from batches.models import Batch, BatchStatusChange, BulkCancel, BulkCancelItem, ProgressSnapshot
from housekeeping import postgres, sqlite, thinning

# Rows per statement and per transaction: a few milliseconds of write lock each on SQLite (at a year's
# size a sync waited at most 0.1 s behind a day's housekeeping: benchmarks/bench_year.py).
CHUNK = 500
# Finished batches whose snapshots are thinned per round of the thinning step.
BATCH_CHUNK = 50
# OpenAI retries a webhook delivery for up to 72 hours with the same webhook-id (and a fresh
# signature, which the replay tolerance alone would accept): a receipt is kept past that, so that a
# late retry is still recognised as one.
WEBHOOK_RECEIPT_MARGIN = timedelta(hours=72)


@dataclass
class Step:
    name: str
    what: str
    removed: int = 0
    seconds: float = 0.0
    note: str = ""
    rows: bool = True  # False for the database steps, which count pages or MiB


@dataclass
class Report:
    dry_run: bool
    steps: list[Step] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return sum(step.removed for step in self.steps if step.rows)

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        lines = []
        for step in self.steps:
            text = f"{step.name}: {verb} {step.removed:,} {step.what} ({step.seconds:.2f} s)"
            lines.append(text + (f"; {step.note}" if step.note else ""))
        return lines

    def __str__(self) -> str:
        return "; ".join(self.lines())


# On SQLite, after each chunk housekeeping pauses as long as the chunk took (at most this long), so
# it holds the one write lock at most half the time. Back to back, its transactions left a sync waiting
# for the lock almost no gap to take it in: SQLite's busy handler looks again only every 100 ms, and a
# sync waited 28.7 s behind the first housekeeping of a year's snapshots (bench_year.py).
MAX_PAUSE_SECONDS = 0.1


class _Budget:
    """When to stop (a run that would outlast its deadline resumes at the next one) and what to do
    after every chunk (the task renews its lock; on SQLite, a pause that lets waiting writers in)."""

    def __init__(self, deadline: float | None, on_chunk: Callable[[], object] | None) -> None:
        self.deadline = deadline
        self.on_chunk = on_chunk
        self.pauses = default_connection.vendor == "sqlite"
        self.last_tick = time.monotonic()

    def spent(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def tick(self) -> None:
        if self.on_chunk is not None:
            self.on_chunk()
        if self.pauses:
            time.sleep(min(time.monotonic() - self.last_tick, MAX_PAUSE_SECONDS))
        self.last_tick = time.monotonic()


def run(
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    max_seconds: float | None = None,
    on_chunk: Callable[[], object] | None = None,
) -> Report:
    """Every step in turn; with dry_run, only count what each would remove."""
    now = now or timezone.now()
    budget = _Budget(None if max_seconds is None else time.monotonic() + max_seconds, on_chunk)
    report = Report(dry_run=dry_run)
    steps: list[tuple[str, str, Callable[[], tuple[int, str]]]] = [
        ("sessions", "expired sessions", lambda: clear_sessions(now, dry_run, budget)),
        ("snapshots", "progress snapshots", lambda: thin_snapshots(now, dry_run, budget)),
        ("webhook receipts", "webhook receipts", lambda: delete_webhook_receipts(now, dry_run, budget)),
        ("alert deliveries", "alert deliveries", lambda: delete_deliveries(now, dry_run, budget)),
        ("sign-in records", "django-axes records", lambda: prune_axes(now, dry_run, budget)),
        ("audit events", "audit events", lambda: delete_audit_events(now, dry_run, budget)),
        ("bulk cancels", "finished bulk-cancel requests", lambda: delete_bulk_cancels(now, dry_run, budget)),
    ]
    for name, what, work in steps:
        started = time.monotonic()
        removed, note = work()
        report.steps.append(Step(name, what, removed, time.monotonic() - started, note))
    # Vacuum, checkpoint and reindex work on committed pages only: not inside a caller's transaction.
    if dry_run or default_connection.in_atomic_block:
        return report
    started = time.monotonic()
    if default_connection.vendor == "sqlite":
        freed = sqlite.reclaim(budget=budget.spent, on_step=budget.tick)
        report.steps.append(
            Step("sqlite", "free pages (incremental vacuum)", freed, time.monotonic() - started, rows=False)
        )
    elif default_connection.vendor == "postgresql" and not budget.spent():
        freed = postgres.rebuild_bloated_indexes() // 2**20
        report.steps.append(
            Step(
                "postgresql",
                "MiB of bloated snapshot indexes (rebuilt)",
                freed,
                time.monotonic() - started,
                rows=False,
            )
        )
    return report


# --- deleting in chunks ----------------------------------------------------------------------------


def _delete_in_chunks(queryset: models.QuerySet[Any], dry_run: bool, budget: _Budget) -> tuple[int, str]:
    """Delete what the queryset matches, CHUNK rows per transaction; with dry_run, count it."""
    if dry_run:
        return queryset.count(), ""
    model = queryset.model
    removed = 0
    while True:
        if budget.spent():
            return removed, "stopped at the time limit; the next run goes on"
        pks = list(queryset.order_by().values_list("pk", flat=True)[:CHUNK])
        if not pks:
            return removed, ""
        with transaction.atomic():
            removed += model._default_manager.filter(pk__in=pks).delete()[1].get(model._meta.label, 0)
        budget.tick()


def _keep(days: int) -> str:
    return f"kept {days} days" if days else "kept for ever (retention 0)"


def clear_sessions(now: datetime, dry_run: bool, budget: _Budget) -> tuple[int, str]:
    """Expired sessions: Django's own clear_expired does it in one statement, which on a large table
    holds SQLite's write lock for as long as it takes."""
    return _delete_in_chunks(Session.objects.filter(expire_date__lt=now), dry_run, budget)


def delete_webhook_receipts(now: datetime, dry_run: bool, budget: _Budget) -> tuple[int, str]:
    before = now - REPLAY_TOLERANCE - WEBHOOK_RECEIPT_MARGIN
    return _delete_in_chunks(WebhookReceipt.objects.filter(received_at__lt=before), dry_run, budget)


def delete_deliveries(now: datetime, dry_run: bool, budget: _Budget) -> tuple[int, str]:
    """Sent and given-up deliveries after DASHBOARD_ALERT_DELIVERY_RETENTION_DAYS (0: never)."""
    days = settings.DASHBOARD_ALERT_DELIVERY_RETENTION_DAYS
    if not days:
        return 0, _keep(days)
    finished = Delivery.objects.filter(
        state__in=(Delivery.State.SENT, Delivery.State.FAILED), created_at__lt=now - timedelta(days=days)
    )
    removed, note = _delete_in_chunks(finished, dry_run, budget)
    return removed, note or _keep(days)


def delete_audit_events(now: datetime, dry_run: bool, budget: _Budget) -> tuple[int, str]:
    """Audit events after DASHBOARD_AUDIT_RETENTION_DAYS (0: never)."""
    days = settings.DASHBOARD_AUDIT_RETENTION_DAYS
    if not days:
        return 0, _keep(days)
    removed, note = _delete_in_chunks(
        AuditEvent.objects.filter(at__lt=now - timedelta(days=days)), dry_run, budget
    )
    return removed, note or _keep(days)


def delete_bulk_cancels(now: datetime, dry_run: bool, budget: _Budget) -> tuple[int, str]:
    """Finished bulk-cancel requests after DASHBOARD_BULK_CANCEL_RETENTION_DAYS (0: never), their
    items first, in chunks (a request may hold thousands; deleting it would cascade to all of them in
    one statement). Each batch's cancel stays in its audit events."""
    days = settings.DASHBOARD_BULK_CANCEL_RETENTION_DAYS
    if not days:
        return 0, _keep(days)
    before = now - timedelta(days=days)
    if dry_run:
        return BulkCancel.objects.filter(finished_at__lt=before).count(), _keep(days)
    _, note = _delete_in_chunks(BulkCancelItem.objects.filter(bulk__finished_at__lt=before), dry_run, budget)
    if note:
        return 0, note
    removed, note = _delete_in_chunks(BulkCancel.objects.filter(finished_at__lt=before), dry_run, budget)
    return removed, note or _keep(days)


def prune_axes(now: datetime, dry_run: bool, budget: _Budget) -> tuple[int, str]:
    """django-axes' failed attempts once their cool-off is over (they no longer lock anyone out), and
    its sign-in logs once the longest session they could describe has ended."""
    cool_off = get_cool_off() or timedelta(0)
    logs_before = now - max(cool_off, timedelta(seconds=settings.SESSION_COOKIE_AGE))
    removed = 0
    notes = []
    for queryset in (
        AccessAttempt.objects.filter(attempt_time__lt=now - cool_off),
        AccessLog.objects.filter(attempt_time__lt=logs_before),
        AccessFailureLog.objects.filter(attempt_time__lt=logs_before),
    ):
        count, note = _delete_in_chunks(queryset, dry_run, budget)
        removed += count
        notes += [note] if note else []
    return removed, "; ".join(notes)


# --- thinning snapshots ------------------------------------------------------------------------------


def _unthinned_finished_batches(after: int) -> Iterator[list[tuple[int, datetime | None]]]:
    """(pk, in_progress_at) of finished batches whose snapshots were not thinned yet, BATCH_CHUNK at a
    time in primary-key order (the partial index batch_snapshots_to_thin)."""
    while True:
        rows = list(
            Batch.objects.filter(is_terminal=True, snapshots_thinned_at__isnull=True, pk__gt=after)
            .order_by("pk")
            .values_list("pk", "in_progress_at")[:BATCH_CHUNK]
        )
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def snapshots_to_delete(pk: int, started_at: datetime | None) -> list[int]:
    """The ids of one finished batch's snapshots that thinning removes."""
    points = [
        thinning.Point(*row)
        for row in ProgressSnapshot.objects.filter(batch_id=pk)
        .order_by("taken_at", "id")
        .values_list("id", "taken_at", "completed", "failed", "total")
    ]
    if len(points) <= 2:
        return []
    changes = BatchStatusChange.objects.filter(batch_id=pk).values_list("observed_at", flat=True)
    keep = thinning.points_to_keep(points, started_at=started_at, status_changes=list(changes))
    return [p.id for p in points if p.id not in keep]


def thin_snapshots(now: datetime, dry_run: bool, budget: _Budget) -> tuple[int, str]:
    """Finished batches' snapshots down to what their charts need (housekeeping/thinning.py). Running
    batches are never touched; a finished batch is thinned once and marked (snapshots_thinned_at)."""
    removed = 0
    for rows in _unthinned_finished_batches(after=0):
        for pk, started_at in rows:
            doomed = snapshots_to_delete(pk, started_at)
            removed += len(doomed)
            if dry_run:
                continue
            for start in range(0, len(doomed), CHUNK):
                with transaction.atomic():
                    ProgressSnapshot.objects.filter(pk__in=doomed[start : start + CHUNK]).delete()
                budget.tick()
        if not dry_run:
            # Compare-and-set: a batch another run marked meanwhile stays as that run marked it.
            Batch.objects.filter(pk__in=[pk for pk, _ in rows], snapshots_thinned_at__isnull=True).update(
                snapshots_thinned_at=now
            )
        if budget.spent():
            return removed, "stopped at the time limit; the next run goes on"
    return removed, ""
