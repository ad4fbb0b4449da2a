"""When each connection's sync runs: what is due, and how long a failing connection waits.

The beat dispatcher (batches.tasks.dispatch_due_syncs) asks what is due; the tasks ask whether the API
may be called and record each run's success or failure here. How fast a refresh follows the previous
one is batches.pacing's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from batches import live, pacing
from batches.api.errors import RateLimitError
from batches.connections import ENVIRONMENT_CONNECTION_NAME, environment_connection, is_configured
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


class _Watching:
    """Whether a page watches the connection: asked of Redis once per tick at most, and only if an
    answer needs it."""

    def __init__(self, connection_pk: int) -> None:
        self.connection_pk = connection_pk
        self._answer: bool | None = None

    def __call__(self) -> bool:
        if self._answer is None:
            self._answer = live.is_watched(self.connection_pk)
        return self._answer


def claim_due_work(connection: Connection, now: datetime | None = None) -> list[str]:
    """Which of 'refresh' and 'full_sync' are due; each is claimed with compare-and-set so that two
    beat ticks (or two dispatchers) never enqueue the same run twice.

    A refresh is due at `next_refresh_at`, which each refresh sets as it ends (its interval, the API
    budget, a backoff: batches.pacing), or earlier when a page starts watching a connection whose next
    run is further off than its watched interval. Claiming moves `next_refresh_at` one interval on, so
    a refresh whose worker died or whose message was lost is claimed again then.

    A full sync is due every full_sync_interval while a page watches the connection, and less often
    while none does (pacing.full_sync_interval); a page that starts watching brings it back to its own
    interval. It lists the newest batches as a refresh does, so it runs in the place of a refresh due
    at the same tick; idle, a due full sync waits for the refresh's turn, so that the connection stays
    at one list call a minute."""
    now = now or timezone.now()
    if not may_call_api(connection, now):
        return []
    watching = _Watching(connection.pk)
    refresh_due = _refresh_is_due(connection, now, watching)
    if (
        _full_sync_is_due(connection, now, watching)
        and (refresh_due or watching())
        and _claim_full_sync(connection, now, watching())
    ):
        if refresh_due:
            # The refresh's slot is taken as its claim would take it, so that a full sync that never
            # ends is followed by a refresh an interval later; one that ends records the next refresh
            # (batches.tasks).
            _claim_refresh(connection, now, watching)
        return ["full_sync"]
    if refresh_due and _claim_refresh(connection, now, watching):
        return ["refresh"]
    return []


def _claim_refresh(connection: Connection, now: datetime, watching: _Watching) -> bool:
    return _claim(
        connection,
        "next_refresh_at",
        connection.next_refresh_at,
        now + timedelta(seconds=pacing.refresh_interval(connection, watching())),
    )


def _full_sync_is_due(connection: Connection, now: datetime, watching: _Watching) -> bool:
    current = connection.next_full_sync_at
    if current is None or current <= now:
        return True
    own_interval = timedelta(seconds=connection.full_sync_interval)
    if current <= now + own_interval + timedelta(seconds=1) or not watching():
        return False
    # Scheduled at the idle pace, and now watched: due when its own interval since the last one is up.
    idle_interval = timedelta(seconds=pacing.full_sync_interval(connection, watched=False))
    return current - idle_interval + own_interval <= now


def _claim_full_sync(connection: Connection, now: datetime, watched: bool) -> bool:
    current = connection.next_full_sync_at
    step = timedelta(seconds=pacing.full_sync_interval(connection, watched))
    # Fixed rate: the next run is due one interval after this one was due, not after the beat tick
    # that noticed it (or the refresh's turn it waited for), so that neither stretches every interval.
    # After a long pause (a backoff, a stopped beat), or pulled in by a page, from now instead.
    on_time = current is not None and current <= now < current + step
    following = current + step if on_time and current is not None else now + step
    return _claim(connection, "next_full_sync_at", current, following)


def _refresh_is_due(connection: Connection, now: datetime, watching: _Watching) -> bool:
    """Beat asks this of every connection every second, so Redis is asked only when the answer may
    depend on it: whether a page watches a connection whose next refresh is further off than its
    watched interval, and then whether its API budget allows one sooner."""
    current = connection.next_refresh_at
    if current is None or current <= now:
        return True
    watched_interval = timedelta(seconds=connection.refresh_interval)
    if current <= now + watched_interval + timedelta(seconds=1) or not watching():
        return False
    # Pulled in only as far as the API budget allows: a refresh waiting for its budget keeps waiting.
    allowed = max(watched_interval, timedelta(seconds=pacing.budget_wait(connection.pk)))
    return current > now + allowed + timedelta(seconds=1)


def _claim(connection: Connection, field_name: str, current: datetime | None, following: datetime) -> bool:
    return bool(
        Connection.objects.filter(pk=connection.pk, **{field_name: current}).update(**{field_name: following})
    )


def record_next_refresh(connection_pk: int, at: datetime) -> None:
    """A refresh has run and the next one is due at `at`: beat's dispatcher claims it then."""
    Connection.objects.filter(pk=connection_pk).update(next_refresh_at=at)


def postpone_next_refresh(connection_pk: int, at: datetime) -> bool:
    """A full sync has refreshed every active batch: the next refresh is due no sooner than `at`
    (never brought forward: a backoff or the budget may already have put it later)."""
    return bool(
        Connection.objects.filter(pk=connection_pk)
        .filter(Q(next_refresh_at__isnull=True) | Q(next_refresh_at__lt=at))
        .update(next_refresh_at=at)
    )


def connections_to_sync() -> Iterable[Connection]:
    """The connections to dispatch for, in one query (beat asks every second); the environment's
    connection is recreated only when it is missing."""
    every = list(Connection.objects.all())
    if not any(c.name == ENVIRONMENT_CONNECTION_NAME for c in every):
        every.append(environment_connection())
    return [c for c in every if c.enabled and is_configured(c)]
