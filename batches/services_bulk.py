"""Bulk cancel: an operator's request to cancel many batches, and the work a Celery task does on it.

start_bulk_cancel records the request and its items in one transaction and enqueues the task once;
run_bulk_cancel (the task's body) cancels each batch through the API client, one at a time, honouring
429s, and records an audit event per batch. Everything that must hold across processes lives in the
database: the idempotency key (unique), the items (one open item per batch, unique), each item's
claim (compare-and-set from pending) and the lease of the one run at work on a request.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEvent
from accounts.roles import can_operate
from batches import sync
from batches.api.client import BatchAPIClient
from batches.api.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InternalServerError,
    RateLimitError,
    describe,
)
from batches.api.objects import ApiBatch
from batches.connections import ConnectionNotConfigured, client_for
from batches.models import Batch, BulkCancel, BulkCancelItem, CancelRequest, Connection
from batches.services import Actor
from batches.statuses import TERMINAL_STATUSES

logger = logging.getLogger(__name__)

State = BulkCancelItem.State
# How long a run may work on a request before another may take over (renewed as it goes).
LEASE = timedelta(seconds=120)
# An item claimed longer ago than this belongs to a run that died: it is offered again.
STALE_CLAIM = timedelta(minutes=5)
# The wait after a 429 that named none, and after a transient failure (timeout, 5xx).
RATE_LIMIT_BACKOFF = timedelta(seconds=5)
TRANSIENT_BACKOFF = timedelta(seconds=10)
# Transient failures of one batch before it counts as failed; a 429 never counts.
MAX_TRANSIENT_ATTEMPTS = 3
# Answers (and the batches as observed) are written in groups, one transaction each.
WRITE_EVERY = 25
CLAIM_CHUNK = 50
_RATE_LIMITED = "Rate limited by the API: trying again after its retry-after."
# Marks an item whose run died after claiming it: it may have been cancelled already.
_RECLAIMED = "Claimed by a run that stopped; checking with the API before sending again."
# How long an item may be due with no run at work before the dispatcher enqueues its request again.
SWEEP_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class StartOutcome:
    bulk: BulkCancel | None
    created: bool
    message: str


def start_bulk_cancel(
    *,
    key: str,
    batches: QuerySet[Batch],
    selection: str,
    user: Actor | None,
    request: HttpRequest | None = None,
) -> StartOutcome:
    """Record a bulk cancel of `batches` (the cancellable ones a selector chose) and enqueue its task.

    The same key again (a double click, a replayed POST) returns the request it made, starting
    nothing. A batch already held open by another bulk cancel (a second tab) is left to that one."""
    if user is None or not can_operate(user):
        raise PermissionDenied("Cancelling batches needs the operator role.")
    existing = BulkCancel.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return StartOutcome(existing, False, "This bulk cancel was already requested.")
    try:
        with transaction.atomic():
            bulk = BulkCancel.objects.create(
                idempotency_key=key,
                user=user if user.is_authenticated else None,
                created_at=timezone.now(),
                selection=selection[:500],
            )
            open_elsewhere = BulkCancelItem.objects.filter(state__in=BulkCancelItem.OPEN_STATES).values(
                "batch"
            )
            pks = list(batches.exclude(pk__in=open_elsewhere).order_by("pk").values_list("pk", flat=True))
            # ignore_conflicts: a concurrent bulk cancel may open the same batch between the read and
            # the insert; the unique constraint then keeps it in that one only.
            BulkCancelItem.objects.bulk_create(
                [BulkCancelItem(bulk=bulk, batch_id=pk) for pk in pks], batch_size=500, ignore_conflicts=True
            )
            total = bulk.items.count()
            if total == 0:
                transaction.set_rollback(True)
            else:
                audit.record(
                    AuditEvent.Action.BULK_CANCEL,
                    actor=user,
                    target=f"bulk cancel {bulk.pk}",
                    detail=f"{total} batches: {selection}",
                    request=request,
                )
                transaction.on_commit(lambda: _enqueue(bulk.pk))
    except IntegrityError:
        # The same key committed by a concurrent request (two clicks racing): that one stands.
        existing = BulkCancel.objects.filter(idempotency_key=key).first()
        if existing is None:
            raise
        return StartOutcome(existing, False, "This bulk cancel was already requested.")
    if total == 0:
        return StartOutcome(
            None,
            False,
            "None of these batches can be cancelled now: they finished or are already being cancelled.",
        )
    return StartOutcome(bulk, True, f"Cancelling {total} batches.")


def _enqueue(bulk_pk: int) -> None:
    from batches.tasks import bulk_cancel_batches  # the task module imports this one

    try:
        bulk_cancel_batches.delay(bulk_pk)
    except Exception:
        # The broker is down: the request is saved, and the dispatcher enqueues it once it is back
        # (unfinished_bulk_cancels), so the operator gets the progress page rather than an error.
        logger.warning("could not enqueue bulk cancel %s now; the dispatcher will", bulk_pk, exc_info=True)


@dataclass
class RunOutcome:
    ran: bool
    answered: int = 0
    # Seconds until the earliest postponed item is due; None when nothing is left to do.
    retry_in: float | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.ran:
            return "skipped: finished, or another run holds it"
        parts = ", ".join(f"{n} {state}" for state, n in sorted(self.counts.items()))
        later = f"; again in {self.retry_in:.1f} s" if self.retry_in is not None else ""
        return f"{self.answered} answered ({parts or 'none'}){later}"


def run_bulk_cancel(bulk_pk: int, *, now: datetime | None = None) -> RunOutcome:
    """Work through the due items of one bulk cancel. Returns when every item is answered or the rest
    must wait (a rate limit's retry-after, a transient failure's backoff): then retry_in says when to
    run again."""
    started = now or timezone.now()
    lease = started + LEASE
    taken = (
        BulkCancel.objects.filter(pk=bulk_pk, finished_at__isnull=True)
        .filter(Q(running_until__isnull=True) | Q(running_until__lt=started))
        .update(running_until=lease)
    )
    if not taken:
        return RunOutcome(ran=False)
    bulk = BulkCancel.objects.select_related("user").get(pk=bulk_pk)
    run = _Run(bulk, started, lease)
    try:
        run.work()
    finally:
        run.close()
        # Only our own lease: had it run out and another run taken over, that one's stays.
        BulkCancel.objects.filter(pk=bulk_pk, running_until=run.lease).update(running_until=None)
    return run.outcome()


class _Run:
    """One pass over a bulk cancel's due items, with one API client per connection.

    Items are claimed a chunk at a time (compare-and-set from pending, stamped with this run's token)
    and answered in groups of WRITE_EVERY, one transaction each: per item a compare-and-set from
    `sending` under the token, its CancelRequest and its audit event. A commit per group rather than
    two per batch is most of what a bulk cancel costs besides the API calls."""

    def __init__(self, bulk: BulkCancel, now: datetime, lease: datetime) -> None:
        self.bulk = bulk
        self.now = now
        self.lease = lease
        self.token = uuid.uuid4().hex
        self.clients: dict[int, BatchAPIClient | ConnectionNotConfigured] = {}
        # Connection -> when its rate limit ends: none of its batches is sent before then in this run.
        self.paused: dict[int, datetime] = {}
        self.observed: dict[int, list[ApiBatch]] = {}
        self.answers: list[tuple[BulkCancelItem, str, str]] = []
        self.outcome_counts: dict[str, int] = {}
        self.answered = 0

    def work(self) -> None:
        BulkCancelItem.objects.filter(
            bulk=self.bulk, state=State.SENDING, claimed_at__lt=self.now - STALE_CLAIM
        ).update(state=State.PENDING, claim="", message=_RECLAIMED)
        last_pk = 0
        while True:
            due = list(
                BulkCancelItem.objects.filter(bulk=self.bulk, state=State.PENDING, pk__gt=last_pk)
                .filter(Q(not_before__isnull=True) | Q(not_before__lte=timezone.now()))
                .select_related("batch__connection")
                .order_by("pk")[:CLAIM_CHUNK]
            )
            if not due:
                break
            last_pk = due[-1].pk
            for item in self._claim(due):
                paused_until = self.paused.get(item.batch.connection_id)
                if paused_until is not None:
                    message = "Waiting: the API is rate limiting this connection."
                    self._postpone(item, paused_until, message, counts=False)
                    continue
                self._answer(item)
                if len(self.answers) >= WRITE_EVERY:
                    self._write()
            self._write()
            renewed = timezone.now() + LEASE
            BulkCancel.objects.filter(pk=self.bulk.pk, running_until=self.lease).update(running_until=renewed)
            self.lease = renewed
        if not BulkCancelItem.objects.filter(bulk=self.bulk, state__in=BulkCancelItem.OPEN_STATES).exists():
            BulkCancel.objects.filter(pk=self.bulk.pk, finished_at__isnull=True).update(
                finished_at=timezone.now()
            )

    def _claim(self, due: list[BulkCancelItem]) -> list[BulkCancelItem]:
        """The items of `due` this run now holds; any another run took meanwhile are left to it."""
        BulkCancelItem.objects.filter(pk__in=[item.pk for item in due], state=State.PENDING).update(
            state=State.SENDING, claimed_at=timezone.now(), claim=self.token, attempts=F("attempts") + 1
        )
        mine = set(
            BulkCancelItem.objects.filter(bulk=self.bulk, state=State.SENDING, claim=self.token).values_list(
                "pk", flat=True
            )
        )
        claimed = [item for item in due if item.pk in mine]
        for item in claimed:
            item.attempts += 1
        return claimed

    def _answer(self, item: BulkCancelItem) -> None:
        batch = item.batch
        if batch.is_terminal or batch.status in TERMINAL_STATUSES or batch.status == "cancelling":
            self.answers.append((item, State.ALREADY_FINISHED, f"Already {batch.status}: nothing to cancel."))
            return
        client = self._client(batch.connection)
        if isinstance(client, ConnectionNotConfigured):
            self.answers.append((item, State.FAILED, str(client)))
            return
        if item.message == _RECLAIMED and self._cancelled_before(item, client):
            return
        try:
            api_batch = client.cancel_batch(batch.batch_id)
        except RateLimitError as error:
            wait = timedelta(seconds=error.retry_after) if error.retry_after else RATE_LIMIT_BACKOFF
            until = timezone.now() + wait
            self.paused[batch.connection_id] = until
            self._postpone(item, until, _RATE_LIMITED, counts=False)
            return
        except (APITimeoutError, APIConnectionError, InternalServerError) as error:
            if item.attempts < MAX_TRANSIENT_ATTEMPTS:
                self._postpone(item, timezone.now() + TRANSIENT_BACKOFF, describe(error))
                return
            self.answers.append((item, State.FAILED, describe(error, undone="it was not cancelled")))
            return
        except APIError as error:
            self._refused(item, client, error)
            return
        self.observed.setdefault(batch.connection_id, []).append(api_batch)
        self.answers.append(
            (item, State.DONE, f"Cancellation requested: the batch is now {api_batch.status}.")
        )

    def _cancelled_before(self, item: BulkCancelItem, client: BatchAPIClient) -> bool:
        """A run that died between the API's answer and writing it down leaves its items claimed; the
        batch's state on the API tells whether its cancel went through, so it is not sent twice."""
        try:
            current = client.retrieve_batch(item.batch.batch_id)
        except APIError:
            return False  # sent again below: a repeated cancel of a cancelling batch changes nothing
        if current.status not in ("cancelling", "cancelled"):
            return False
        self.observed.setdefault(item.batch.connection_id, []).append(current)
        self.answers.append((item, State.DONE, f"Cancellation requested: the batch is now {current.status}."))
        return True

    def _refused(self, item: BulkCancelItem, client: BatchAPIClient, error: APIError) -> None:
        """The API said no: most often because the batch finished meanwhile, which is no error."""
        try:
            current = client.retrieve_batch(item.batch.batch_id)
        except APIError:
            current = None
        if current is not None:
            self.observed.setdefault(item.batch.connection_id, []).append(current)
            if current.status in TERMINAL_STATUSES or current.status == "cancelling":
                message = f"Already {current.status}: nothing to cancel."
                self.answers.append((item, State.ALREADY_FINISHED, message))
                return
        words = describe(
            error, refused="The API refused to cancel", gone="The API no longer knows this batch"
        )
        self.answers.append((item, State.REFUSED, words))

    def _write(self) -> None:
        """The answers so far, each once: the compare-and-set from `sending` under this run's token
        means only the claimant writes an item's answer, and with it the batch's cancel record and audit
        event. Then the batches as the API answered them (cancelling, or a refused one's true state)."""
        user = self.bulk.user
        with transaction.atomic():
            for item, state, message in self.answers:
                written = BulkCancelItem.objects.filter(
                    pk=item.pk, state=State.SENDING, claim=self.token
                ).update(state=state, message=message, not_before=None)
                if not written:
                    continue
                succeeded = state in (State.DONE, State.ALREADY_FINISHED)
                CancelRequest.objects.create(
                    batch=item.batch,
                    user=user,
                    requested_at=timezone.now(),
                    succeeded=succeeded,
                    message=message,
                )
                audit.record(
                    AuditEvent.Action.CANCEL,
                    actor=user,
                    actor_name="" if user else "bulk cancel",
                    target=f"{item.batch.connection.name}/{item.batch.batch_id}",
                    succeeded=succeeded,
                    detail=f"bulk cancel {self.bulk.pk}: {State(state).label}: {message}",
                )
                self.answered += 1
                self.outcome_counts[state] = self.outcome_counts.get(state, 0) + 1
        self.answers.clear()
        for connection_id, api_batches in self.observed.items():
            connection = Connection.objects.get(pk=connection_id)
            sync.upsert_batches(connection, api_batches, observed_at=timezone.now())
        self.observed.clear()

    def _postpone(self, item: BulkCancelItem, until: datetime, message: str, *, counts: bool = True) -> None:
        """Back to pending, due again at `until`. A rate limit does not `count`: attempts are what
        MAX_TRANSIENT_ATTEMPTS limits, and waiting for the API is no failure of the batch."""
        attempts = F("attempts") if counts else F("attempts") - 1
        BulkCancelItem.objects.filter(pk=item.pk, state=State.SENDING, claim=self.token).update(
            state=State.PENDING, not_before=until, message=message, claim="", attempts=attempts
        )

    def _client(self, connection: Connection) -> BatchAPIClient | ConnectionNotConfigured:
        if connection.pk not in self.clients:
            try:
                self.clients[connection.pk] = client_for(connection)
            except ConnectionNotConfigured as error:
                self.clients[connection.pk] = error
        return self.clients[connection.pk]

    def close(self) -> None:
        for client in self.clients.values():
            if isinstance(client, BatchAPIClient):
                client.close()

    def outcome(self) -> RunOutcome:
        waiting = (
            BulkCancelItem.objects.filter(bulk=self.bulk, state=State.PENDING)
            .order_by("not_before")
            .values_list("not_before", flat=True)
            .first()
        )
        pending = BulkCancelItem.objects.filter(bulk=self.bulk, state__in=BulkCancelItem.OPEN_STATES).exists()
        retry_in: float | None = None
        if pending:
            retry_in = max(0.5, (waiting - timezone.now()).total_seconds()) if waiting else 0.5
        return RunOutcome(ran=True, answered=self.answered, retry_in=retry_in, counts=self.outcome_counts)


def unfinished_bulk_cancels(now: datetime | None = None) -> Sequence[int]:
    """Requests the dispatcher (every second) should run now, with no live run holding their lease:
    those whose waiting items came due (a 429's retry-after or a backoff: the task schedules no
    countdown message, which a worker would hold unacknowledged and which kombu loses its footing
    over when Redis drops), and those whose task was lost (never enqueued while the broker was down).
    A request's first task gets SWEEP_GRACE to start, so that the sweep does not race it (the lease
    would make the loser skip, but it need not run)."""
    now = now or timezone.now()
    overdue = now - SWEEP_GRACE
    due = Q(items__state=State.PENDING, items__not_before__isnull=False, items__not_before__lte=now)
    lost = Q(items__state=State.PENDING, items__not_before__isnull=True, created_at__lt=overdue)
    return list(
        BulkCancel.objects.filter(finished_at__isnull=True)
        .filter(Q(running_until__isnull=True) | Q(running_until__lt=overdue))
        .filter(due | lost)
        .values_list("pk", flat=True)
        .distinct()
    )
