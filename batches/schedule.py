"""When each connection's sync runs: what is due, and how long a failing connection waits.

The beat dispatcher (batches.tasks.dispatch_due_syncs) asks what is due; the tasks ask whether the API
may be called and record each run's success or failure here. How fast a refresh follows the previous
one is batches.pacing's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from batches import pacing
from batches.api.errors import RateLimitError
from batches.connections import environment_connection, is_configured
from batches.models import Connection

# How long a 429 without retry-after, or a failing API, keeps a connection waiting.
DEFAULT_RATE_LIMIT_WAIT = 30.0
MAX_FAILURE_BACKOFF = 300.0


def record_success(connection: Connection) -> None:
    Connection.objects.filter(pk=connection.pk).update(
        last_success_at=timezone.now(), consecutive_failures=0, next_attempt_at=None, last_error=""
    )


def record_failure(connection: Connection, error: Exception) -> datetime:
    """Remember the error and when the next attempt may be made; returns that time."""
    now = timezone.now()
    failures = connection.consecutive_failures + 1
    if isinstance(error, RateLimitError):
        wait = error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_WAIT
    else:
        wait = min(MAX_FAILURE_BACKOFF, settings.SYNC_FAILURE_BACKOFF * 2 ** min(failures - 1, 10))
    next_attempt = now + timedelta(seconds=wait)
    Connection.objects.filter(pk=connection.pk).update(
        last_error_at=now,
        last_error=str(error)[:1000],
        consecutive_failures=failures,
        next_attempt_at=next_attempt,
    )
    return next_attempt


def may_call_api(connection: Connection, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return connection.enabled and (connection.next_attempt_at is None or connection.next_attempt_at <= now)


def claim_due_work(connection: Connection, now: datetime | None = None) -> list[str]:
    """Which of 'refresh' and 'full_sync' are due; each is claimed with compare-and-set so that two
    beat ticks (or two dispatchers) never enqueue the same run twice.

    A refresh schedules its own next run (batches.tasks), so here it is due only when that run is
    SYNC_CHAIN_GRACE seconds late (its chain was lost: a worker killed, a broker flushed), when it never
    ran, or when a page started watching a connection whose next run is further off than its watched
    interval."""
    now = now or timezone.now()
    if not may_call_api(connection, now):
        return []
    due: list[str] = []
    current = connection.next_full_sync_at
    if current is None or current <= now:
        # Fixed rate: the next run is due one interval after this one was due, not after the beat tick
        # that noticed it, so the dispatcher's tick does not stretch every interval. After a long
        # pause (a backoff, a stopped beat) the schedule restarts from now rather than catching up.
        step = timedelta(seconds=connection.full_sync_interval)
        following = current + step if current is not None and current + step > now else now + step
        if _claim(connection, "next_full_sync_at", current, following):
            due.append("full_sync")
    current = connection.next_refresh_at
    interval = timedelta(seconds=pacing.refresh_interval(connection))
    lost = current is None or current <= now - timedelta(seconds=settings.SYNC_CHAIN_GRACE)
    # Pulled in only as far as the API budget allows: a chain waiting for its budget keeps waiting.
    allowed = max(interval, timedelta(seconds=pacing.budget_wait(connection.pk)))
    pulled_in = current is not None and current > now + allowed + timedelta(seconds=1)
    if (lost or pulled_in) and _claim(connection, "next_refresh_at", current, now + interval):
        due.append("refresh")
    return due


def _claim(connection: Connection, field_name: str, current: datetime | None, following: datetime) -> bool:
    return bool(
        Connection.objects.filter(pk=connection.pk, **{field_name: current}).update(**{field_name: following})
    )


def record_next_refresh(connection_pk: int, at: datetime) -> None:
    """The refresh scheduled itself for `at`: beat's dispatcher leaves it alone until then (and grace)."""
    Connection.objects.filter(pk=connection_pk).update(next_refresh_at=at)


def connections_to_sync() -> Iterable[Connection]:
    environment_connection()
    return [c for c in Connection.objects.filter(enabled=True) if is_configured(c)]
