"""Writes of the alerts app: noticing events, creating deliveries, sending them, taking in webhooks.

Several workers may run all of this at once. Nothing here takes a lock: a delivery exists at most once
per (channel, batch, event) by a unique constraint, and each step of its life is a compare-and-set
update, so a worker that loses a race simply does nothing.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts import channels, events
from alerts.models import OUTCOME_EVENTS, Channel, Delivery, ScanCursor, WebhookReceipt
from batches.models import Batch, BatchStatusChange, Connection

logger = logging.getLogger(__name__)

STATUS_CHANGES_CURSOR = "status_changes"
# The cursor trails the newest status change by this much. On PostgreSQL ids are handed out when a row is
# inserted but become visible when it commits, so a row with a lower id can appear after a higher one;
# rows inside this window are read again on every scan (a repeat creates nothing) until they settle.
CURSOR_GRACE = timedelta(minutes=2)
# A batch first seen already finished (after an install, or between two polls) is news only if the API
# says it finished this recently; otherwise the first sync of an old account would notify its history.
FIRST_SIGHTING_WINDOW = timedelta(hours=1)
SCAN_LIMIT = 1000
SEND_LIMIT = 50
# A delivery left in "sending" this long belongs to a worker that died: it is sent again. Far above the
# HTTP timeout, so a live worker always finishes first.
SENDING_LEASE = timedelta(minutes=2)
# One run stops claiming deliveries after this long, leaving the rest to the next beat tick.
SEND_BUDGET_SECONDS = 30.0
MAX_BACKOFF = timedelta(hours=6)


@dataclass
class RunResult:
    noticed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0

    def __str__(self) -> str:
        return (
            f"{self.noticed} noticed, {self.sent} sent, {self.retrying} to retry, "
            f"{self.failed} given up, {self.released} released"
        )


def process(now: datetime | None = None) -> RunResult:
    """One beat tick: notice new events, then send whatever is due."""
    now = now or timezone.now()
    result = RunResult()
    result.noticed += scan_status_changes(now)
    result.noticed += scan_active_batches(now)
    send_due(now, result)
    return result


# --- noticing events ---------------------------------------------------------------------------


def _listening_channels() -> list[Channel]:
    # A deactivated user's channels fall silent with their account.
    return list(Channel.objects.filter(enabled=True).filter(Q(user__isnull=True) | Q(user__is_active=True)))


def create_deliveries(found: Iterable[tuple[Batch, str, datetime]], now: datetime) -> int:
    """A pending delivery for every channel that wants each (batch, event, when it happened); returns
    how many were new to this worker (another worker may have inserted the same rows a moment earlier:
    the insert skips them)."""
    found = list(found)
    if not found:
        return 0
    listening = _listening_channels()
    if not listening:
        return 0
    existing = set(
        Delivery.objects.filter(batch_id__in={batch.pk for batch, _, _ in found}).values_list(
            "channel_id", "batch_id", "event"
        )
    )
    rows = [
        Delivery(
            channel=channel,
            batch=batch,
            event=event,
            payload=events.payload_for(
                batch, event, occurred_at=occurred_at, base_url=settings.DASHBOARD_URL
            ),
            next_attempt_at=now,
            created_at=now,
        )
        for batch, event, occurred_at in found
        for channel in listening
        if channel.wants(event, batch.connection_id) and (channel.pk, batch.pk, event) not in existing
    ]
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _is_news(change: Mapping[str, Any]) -> bool:
    if change["old_status"]:
        return True
    stamp = change["api_timestamp"]
    return stamp is not None and stamp >= change["observed_at"] - FIRST_SIGHTING_WINDOW


def scan_status_changes(now: datetime) -> int:
    """Deliveries for the outcome changes recorded since the cursor, then the cursor moved on."""
    cursor, _ = ScanCursor.objects.get_or_create(name=STATUS_CHANGES_CURSOR)
    changes = list(
        BatchStatusChange.objects.filter(id__gt=cursor.position)
        .order_by("id")
        .values("id", "batch_id", "old_status", "new_status", "observed_at", "api_timestamp")[:SCAN_LIMIT]
    )
    if not changes:
        return 0
    outcomes = [c for c in changes if c["new_status"] in OUTCOME_EVENTS and _is_news(c)]
    batches = Batch.objects.select_related("connection").in_bulk({c["batch_id"] for c in outcomes})
    noticed = create_deliveries(
        (
            (batches[c["batch_id"]], c["new_status"], c["api_timestamp"] or c["observed_at"])
            for c in outcomes
            if c["batch_id"] in batches
        ),
        now,
    )
    settled = [c["id"] for c in changes if c["observed_at"] <= now - CURSOR_GRACE]
    if settled:
        # Compare-and-set: if another worker moved the cursor meanwhile, its move stands.
        ScanCursor.objects.filter(pk=cursor.pk, position=cursor.position).update(
            position=max(settled), updated_at=now
        )
    return noticed


def scan_active_batches(now: datetime) -> int:
    """Deliveries for batches that stalled or will not finish before they expire."""
    after = timedelta(minutes=settings.STALLED_AFTER_MINUTES)
    running = Batch.objects.select_related("connection").filter(status="in_progress", is_terminal=False)
    maybe_stalled = running.filter(
        Q(last_progress_at__lt=now - after) | Q(last_progress_at__isnull=True, in_progress_at__lt=now - after)
    )
    found = [(batch, "stalled", now) for batch in maybe_stalled if batch.is_stalled(now, after)]
    at_risk = running.filter(eta_at__isnull=False, expires_at__isnull=False, eta_at__gt=F("expires_at"))
    found += [(batch, "at_risk", now) for batch in at_risk if batch.eta_after_expiry]
    return create_deliveries(found, now)


# --- sending -----------------------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """Wait before attempt `attempts + 1`: the base, doubled for each attempt made after the first."""
    seconds = settings.ALERTS_RETRY_BACKOFF * 2 ** min(max(attempts - 1, 0), 20)
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


def release_abandoned(now: datetime, result: RunResult | None = None) -> int:
    """Deliveries whose worker died mid-send go back to pending, or are given up once they have had
    every attempt: a delivery that kills its worker each time (out of memory, say) would otherwise be
    released and tried again every SENDING_LEASE for ever. Returns how many were released."""
    abandoned = Delivery.objects.filter(state=Delivery.State.SENDING, claimed_at__lt=now - SENDING_LEASE)
    given_up = abandoned.filter(attempts__gte=settings.ALERTS_MAX_ATTEMPTS).update(
        state=Delivery.State.FAILED,
        claimed_at=None,
        last_error="the worker sending it stopped before it finished, on the last attempt",
    )
    if given_up:
        logger.warning("Gave up on %s notification(s) whose worker stopped on the last attempt", given_up)
    if result is not None:
        result.failed += given_up
    return abandoned.update(
        state=Delivery.State.PENDING,
        claimed_at=None,
        last_error="the worker sending it stopped before it finished",
    )


def send_due(now: datetime, result: RunResult | None = None) -> RunResult:
    result = result or RunResult()
    result.released += release_abandoned(now, result)
    due = list(
        Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now, channel__enabled=True)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:SEND_LIMIT]
    )
    started = time.monotonic()
    for pk in due:
        if time.monotonic() - started > SEND_BUDGET_SECONDS:
            break
        claimed_at = timezone.now()
        # The claim: of all the workers that saw this delivery due, exactly one moves it to sending.
        claimed = Delivery.objects.filter(
            pk=pk, state=Delivery.State.PENDING, next_attempt_at__lte=now
        ).update(state=Delivery.State.SENDING, claimed_at=claimed_at, attempts=F("attempts") + 1)
        if claimed:
            _send_claimed(pk, claimed_at, now, result)
    return result


def unexpected_reason(error: Exception) -> str:
    """A short reason for an error nobody foresaw, fit for the failures page and the logs: the
    exception's class and where in our code it was raised, never its message (which may quote the
    channel's URL or secret)."""
    ours = f"{settings.BASE_DIR}{os.sep}"
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename.startswith(ours) and "site-packages" not in frame.filename:
            place = f"{frame.filename.removeprefix(ours)}:{frame.lineno}"
            return f"unexpected error: {type(error).__name__} in {place}"
    return f"unexpected error: {type(error).__name__}"


def _send_claimed(pk: int, claimed_at: datetime, now: datetime, result: RunResult) -> None:
    delivery = Delivery.objects.select_related("channel").get(pk=pk)
    mine = Delivery.objects.filter(pk=pk, state=Delivery.State.SENDING, claimed_at=claimed_at)
    try:
        channels.send(delivery.channel, delivery.pk, delivery.payload, now=timezone.now())
    except Exception as error:
        # Each delivery succeeds or fails alone, whatever goes wrong: an exception let through here
        # would end the whole run, leave the other due deliveries waiting and this one "sending" until
        # its lease ran out, again and again. Expected failures (SendError) carry a message written to
        # be shown; anything else is described by its class and place only.
        if isinstance(error, channels.SendError):
            message = str(error)[:500]
        else:
            message = unexpected_reason(error)
            logger.warning(
                "Sending the %s notification of batch %s to channel %s failed unexpectedly: %s",
                delivery.event,
                delivery.batch_id,
                delivery.channel_id,
                message,
            )
        if delivery.attempts >= settings.ALERTS_MAX_ATTEMPTS:
            mine.update(state=Delivery.State.FAILED, last_error=message, claimed_at=None)
            result.failed += 1
            logger.warning(
                "Gave up on the %s notification of batch %s to channel %s after %s attempts: %s",
                delivery.event,
                delivery.batch_id,
                delivery.channel_id,
                delivery.attempts,
                message,
            )
        else:
            mine.update(
                state=Delivery.State.PENDING,
                next_attempt_at=now + backoff(delivery.attempts),
                last_error=message,
                claimed_at=None,
            )
            result.retrying += 1
            logger.info(
                "The %s notification of batch %s to channel %s failed (attempt %s), will retry: %s",
                delivery.event,
                delivery.batch_id,
                delivery.channel_id,
                delivery.attempts,
                message,
            )
        return
    mine.update(state=Delivery.State.SENT, sent_at=timezone.now(), last_error="", claimed_at=None)
    result.sent += 1


def retry_delivery(pk: int, now: datetime | None = None) -> bool:
    """An admin asked to try a given-up delivery again: it starts over with a full set of attempts."""
    return bool(
        Delivery.objects.filter(pk=pk, state=Delivery.State.FAILED).update(
            state=Delivery.State.PENDING, attempts=0, next_attempt_at=now or timezone.now()
        )
    )


# --- OpenAI webhook ingest ---------------------------------------------------------------------


def record_webhook(
    webhook_id: str, event_type: str, connection: Connection | None, batch_id: str, now: datetime
) -> bool:
    """True the first time a webhook-id is seen, False for a redelivery (even a concurrent one)."""
    try:
        with transaction.atomic():
            WebhookReceipt.objects.create(
                webhook_id=webhook_id[:200],
                event_type=event_type[:100],
                connection=connection,
                batch_id=batch_id[:200],
                received_at=now,
            )
    except IntegrityError:
        return False
    return True


def forget_webhook(webhook_id: str) -> None:
    """Undo record_webhook when the work it stands for could not be queued, so a redelivery is taken."""
    WebhookReceipt.objects.filter(webhook_id=webhook_id[:200]).delete()
