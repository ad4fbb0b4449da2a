"""Celery tasks: thin wrappers that take a lock and call a sync service."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

import redis
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from batches import live, pacing, schedule, services_bulk, sync
from batches.api.errors import APIError
from batches.connections import ConnectionNotConfigured
from batches.models import Connection
from dashboard.shared_redis import client

logger = logging.getLogger(__name__)

LOCK_HELD = "skipped: another run holds the lock"


class _SyncWork(Protocol):
    """A sync service as the tasks call it: on_page renews the lock after every page."""

    def __call__(
        self, connection: Connection, *, on_page: Callable[[], object] | None = ...
    ) -> sync.SyncResult: ...


def _run_locked(
    kind: str, connection_id: int, work: _SyncWork, *, budgeted: bool = False
) -> tuple[str, sync.SyncResult | None]:
    """Run one sync service under the connection's lock for `kind`: what happened, and the service's
    result if it ran to the end. Every API call it made is spent from the connection's budget; a
    budgeted run first takes one, and does not start without it."""
    connection = Connection.objects.filter(pk=connection_id, enabled=True).first()
    if connection is None:
        return "skipped: no such enabled connection", None
    if not schedule.may_call_api(connection):
        return "skipped: waiting for the API (rate limited or failing)", None
    # The lock lives SYNC_LOCK_TIMEOUT seconds and is renewed after every page, so a killed worker's
    # lock soon expires by itself while a long, healthy run keeps it.
    lock = client().lock(f"batch-dashboard:{kind}:{connection_id}", timeout=settings.SYNC_LOCK_TIMEOUT)
    if not lock.acquire(blocking=False):
        return LOCK_HELD, None
    result = None
    try:
        if budgeted and pacing.take_call(connection_id) > 0:
            return "skipped: the connection's API budget for this minute is spent", None
        result = work(connection, on_page=lock.reacquire)
    except (APIError, ConnectionNotConfigured) as error:
        next_attempt = schedule.record_failure(connection, error)
        logger.warning("%s of connection %s failed: %s", kind, connection.name, error)
        return f"failed: next attempt at {next_attempt.isoformat()}", None
    except Exception as error:
        # Anything else (the database gone, a bug) is a failure too: recorded, and backed off from,
        # rather than retried at every tick with nothing to show for it.
        next_attempt = schedule.record_failure(connection, error)
        logger.exception("%s of connection %s failed", kind, connection.name)
        return f"failed: next attempt at {next_attempt.isoformat()}", None
    finally:
        if result is not None:
            # A budgeted run took one call before it started; the rest it spent as it went.
            pacing.spend_calls(connection_id, result.api_calls - (1 if budgeted else 0))
        # The lock may have expired while we worked: then there is nothing to release.
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    schedule.record_success(connection)
    outcome = (
        f"{kind}: {result.created} created, {result.updated} updated, "
        f"{result.unchanged} unchanged, {result.api_calls} API calls"
    )
    return outcome, result


@shared_task(acks_late=True, ignore_result=True)
def refresh_active_batches(connection_id: int) -> str:
    """Refresh, then record when the next refresh is due (batches.pacing) for beat's dispatcher, which
    looks every second. No countdown message: a worker holding one unacknowledged for its whole delay
    crashes on kombu's Redis transport when Redis drops, and a dropped one would be lost anyway."""
    outcome, _ = _run_locked("refresh", connection_id, sync.refresh_active, budgeted=True)
    if outcome == LOCK_HELD:
        return outcome  # the run holding the lock records the next one when it ends
    connection = Connection.objects.filter(pk=connection_id, enabled=True).first()
    if connection is not None:
        delay = pacing.next_refresh_delay(connection, budget_wait=pacing.budget_wait(connection_id))
        schedule.record_next_refresh(connection_id, timezone.now() + timedelta(seconds=delay))
        live.record_next_refresh(connection_id, time.time() + delay)
    return outcome


@shared_task(acks_late=True, ignore_result=True)
def full_sync_batches(connection_id: int) -> str:
    """A full sync, which lists the newest batches as a refresh does: one that saw every active batch
    stands in for the refresh, whose next run is then due one interval later, and idle one interval
    per list call it made, so that full syncs add nothing to an idle connection's call a minute. After
    a complete walk (every 6 hours, and a new connection's first) the refresh follows an interval later
    all the same, rather than leave the batches it found unwatched for as many minutes as it had pages."""
    outcome, result = _run_locked("full_sync", connection_id, sync.full_sync)
    if result is not None and result.refreshed_active:
        connection = Connection.objects.filter(pk=connection_id, enabled=True).first()
        if connection is not None:
            calls = 1 if result.complete_walk else result.api_calls
            delay = pacing.next_refresh_delay(
                connection, budget_wait=pacing.budget_wait(connection_id), calls=calls
            )
            if schedule.postpone_next_refresh(connection_id, timezone.now() + timedelta(seconds=delay)):
                live.record_next_refresh(connection_id, time.time() + delay)
    return outcome


@shared_task(ignore_result=True)
def dispatch_due_syncs() -> list[str]:
    """Run by beat every second (SYNC_DISPATCH_INTERVAL): enqueue each connection's refresh and full
    sync as soon as it is due."""
    enqueued = []
    for connection in schedule.connections_to_sync():
        for kind in schedule.claim_due_work(connection):
            task = full_sync_batches if kind == "full_sync" else refresh_active_batches
            task.delay(connection.pk)
            enqueued.append(f"{kind}:{connection.name}")
    # A bulk cancel whose task was lost (the broker was down when it was requested) is picked up
    # here; one already at work holds its lease, so this never runs one twice at once.
    for bulk_pk in services_bulk.unfinished_bulk_cancels():
        bulk_cancel_batches.delay(bulk_pk)
        enqueued.append(f"bulk_cancel:{bulk_pk}")
    return enqueued


@shared_task(acks_late=True, ignore_result=True)
def bulk_cancel_batches(bulk_pk: int) -> str:
    """Cancel the due batches of one bulk cancel. What must wait (a 429's retry-after, a transient
    failure's backoff) is started again by the dispatcher once due (services_bulk.unfinished_bulk_cancels),
    not by a countdown message: see refresh_active_batches for why none is held."""
    outcome = services_bulk.run_bulk_cancel(bulk_pk)
    if outcome.retry_in is not None and outcome.retry_in <= 1:
        # More is due at once (items a dead run left, the rest of a long list): a plain message.
        bulk_cancel_batches.delay(bulk_pk)
    return outcome.summary()
