"""The sync services: keeping the database a faithful mirror of the API. Plain functions, no Celery inside.

They walk the API's pages (batches.connections gives the client) and hand each page to the writer
(batches.writer), which makes every write safe against a concurrent worker doing the same work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from batches import live, writer
from batches.api.client import BatchAPIClient
from batches.api.errors import APIError
from batches.api.objects import ApiBatch, ApiBatchPage
from batches.connections import client_for
from batches.models import Batch, Connection
from spend import costs

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
COMPLETE_WALK_INTERVAL = timedelta(hours=6)


@dataclass
class SyncResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    api_calls: int = 0
    pages: int = 0
    skipped: int = 0  # list items that were not batch objects with an id (see ApiBatchPage.skipped)
    unsaved: int = 0  # batches the database refused (see upsert_batches); logged, tried again next run
    unsaved_ids: set[str] = field(default_factory=set)
    seen_ids: set[str] = field(default_factory=set)
    changed_pks: list[int] = field(default_factory=list)  # the rows inserted or updated
    # A full sync that saw every batch active when it began (or walked the whole list) has done what a
    # refresh does, so the next refresh can wait (batches.tasks).
    refreshed_active: bool = False
    complete_walk: bool = False  # a full sync that walked the whole list (COMPLETE_WALK_INTERVAL)

    def add(self, other: SyncResult) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.unsaved += other.unsaved
        self.unsaved_ids |= other.unsaved_ids
        self.seen_ids |= other.seen_ids
        self.changed_pks += other.changed_pks


def _note_skipped(connection: Connection, page: ApiBatchPage, total: SyncResult) -> None:
    if page.skipped:
        total.skipped += len(page.skipped)
        logger.warning(
            "sync of %s: skipped %d malformed list item(s): %s",
            connection.name,
            len(page.skipped),
            "; ".join(page.skipped)[:500],
        )


# Errors that say the database cannot be used at all, rather than that it refused one row: saving the
# batches one by one would only repeat them, so they fail the run (which then backs off).
_DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def upsert_batches(
    connection: Connection,
    api_batches: Sequence[ApiBatch],
    *,
    observed_at: datetime,
    pricer: costs.Pricer | None = None,
) -> SyncResult:
    """Write one page of observations, each batch with its cost by `pricer` (the current prices unless
    a sync run passes the ones it loaded once). Idempotent, and a stale observation never overwrites a
    newer one.

    Each batch stands alone: if the page fails to save, its batches are saved one at a time, and one
    that still fails (a value no column can hold, text the database refuses) is skipped, counted in
    `unsaved` and logged, while the rest of the page is saved and the sync goes on."""
    pricer = pricer or costs.Pricer.load(connection.pk)
    try:
        # One commit per page rather than one per statement.
        with transaction.atomic():
            return _upsert_page(connection, api_batches, observed_at, pricer)
    except _DATABASE_UNAVAILABLE:
        raise
    except Exception as error:
        if len(api_batches) == 1:
            return _unsaved(connection, api_batches[0], error)
        logger.warning(
            "sync of %s: a page of %d batches failed to save (%s: %s); saving them one by one",
            connection.name,
            len(api_batches),
            type(error).__name__,
            str(error)[:300],
        )
    result = SyncResult()
    for api_batch in api_batches:
        try:
            with transaction.atomic():
                result.add(_upsert_page(connection, [api_batch], observed_at, pricer))
        except _DATABASE_UNAVAILABLE:
            raise
        except Exception as error:
            result.add(_unsaved(connection, api_batch, error))
    return result


def _unsaved(connection: Connection, api_batch: ApiBatch, error: Exception) -> SyncResult:
    logger.error(
        "sync of %s: batch %s could not be saved and was skipped (%s: %s)",
        connection.name,
        api_batch.id,
        type(error).__name__,
        str(error)[:300],
        exc_info=error,
    )
    # Seen all the same: a complete walk must not mark it as gone from the API's list.
    return SyncResult(unsaved=1, seen_ids={api_batch.id}, unsaved_ids={api_batch.id})


def _upsert_page(
    connection: Connection, api_batches: Sequence[ApiBatch], observed_at: datetime, pricer: costs.Pricer
) -> SyncResult:
    written = writer.write_page(connection.pk, api_batches, observed_at, price=pricer)
    # In the page's transaction: the spend page never sees a batch without its current cost.
    costs.refresh_spend(written.changed_pks)
    return SyncResult(
        created=written.created,
        updated=written.updated,
        unchanged=written.unchanged,
        seen_ids=written.seen_ids,
        changed_pks=written.changed_pks,
    )


def _reprice_if_prices_changed(pricer: costs.Pricer, total: SyncResult) -> None:
    """A run prices its batches with the prices it loaded at its start. A price edited meanwhile is
    recomputed at once (spend.services), perhaps before this run wrote some of its batches with the old
    price: then those batches are priced again. One look at the price table per run that wrote."""
    if total.changed_pks and not pricer.is_current():
        costs.reprice(total.changed_pks)


# --- the sync operations -----------------------------------------------------------------------


def full_sync(
    connection: Connection,
    *,
    client: BatchAPIClient | None = None,
    complete: bool | None = None,
    on_page: Callable[[], object] | None = None,
) -> SyncResult:
    """Walk the list newest first. Stops early at a page that changed nothing and whose batches are all
    terminal, or once every batch that was active has been seen (the pages after hold only batches
    that had finished: nothing left to learn), unless this is a complete walk, which also marks the
    batches the API no longer lists."""
    now = timezone.now()
    if complete is None:
        complete = (
            connection.last_complete_walk_at is None
            or now - connection.last_complete_walk_at > COMPLETE_WALK_INTERVAL
        )
    own_client = client is None
    client = client or client_for(connection)
    calls_before = client.calls
    total = SyncResult()
    pricer = costs.Pricer.load(connection.pk)
    active = set(
        Batch.objects.filter(connection=connection, is_terminal=False).values_list("batch_id", flat=True)
    )
    reached_end = False
    try:
        for page in client.list_batch_pages(limit=PAGE_SIZE):
            total.pages += 1
            _note_skipped(connection, page, total)
            result = upsert_batches(connection, page.data, observed_at=timezone.now(), pricer=pricer)
            total.add(result)
            if on_page:
                on_page()
            if not page.has_more:
                reached_end = True
            if (
                not complete
                and page.data
                and result.created == 0
                and result.updated == 0
                and (all(b.is_terminal for b in page.data) or active <= total.seen_ids)
            ):
                break
        else:
            reached_end = True
    finally:
        total.api_calls = client.calls - calls_before
        if own_client:
            client.close()
    _reprice_if_prices_changed(pricer, total)
    total.refreshed_active = reached_end or active <= total.seen_ids
    total.complete_walk = complete
    if complete and reached_end:
        # Every batch the walk wrote was synced after it began (or by a newer observation of another
        # run), so those it did not see are the ones synced before: one condition rather than a
        # list of every id seen (10,000 parameters for 10,000 batches, most of the statement's cost).
        gone = Batch.objects.filter(connection=connection, listed=True).filter(
            Q(last_synced_at__lt=now) | Q(last_synced_at__isnull=True)
        )
        if total.unsaved_ids:
            gone = gone.exclude(batch_id__in=total.unsaved_ids)
        unlisted = gone.update(listed=False)
        if unlisted:
            live.bump(connection.pk)
        Connection.objects.filter(pk=connection.pk).update(last_complete_walk_at=now)
    return total


def refresh_batch(connection: Connection, batch_id: str, *, client: BatchAPIClient | None = None) -> Batch:
    own_client = client is None
    client = client or client_for(connection)
    try:
        api_batch = client.retrieve_batch(batch_id)
    finally:
        if own_client:
            client.close()
    upsert_batches(connection, [api_batch], observed_at=timezone.now())
    return Batch.objects.get(connection=connection, batch_id=api_batch.id)


def refresh_active(
    connection: Connection,
    *,
    client: BatchAPIClient | None = None,
    on_page: Callable[[], object] | None = None,
) -> SyncResult:
    """Bring every non-terminal batch up to date by the cheaper of two routes:
    list pages down to the oldest active batch, or the first page (for new batches) plus one
    retrieve per active batch."""
    active = list(
        Batch.objects.filter(connection=connection, is_terminal=False)
        .order_by("created_at")
        .values_list("batch_id", "created_at")
    )
    own_client = client is None
    client = client or client_for(connection)
    calls_before = client.calls
    total = SyncResult()
    pricer = costs.Pricer.load(connection.pk)
    try:
        if not active:
            _list_until(connection, client, total, stop_at=None, max_pages=1, pricer=pricer, on_page=on_page)
        else:
            oldest_id, oldest_created = active[0]
            position = (
                Batch.objects.filter(connection=connection, listed=True)
                .filter(Q(created_at__gt=oldest_created) | Q(created_at=oldest_created))
                .count()
            )
            list_route_pages = max(1, math.ceil(position / PAGE_SIZE))
            if list_route_pages <= len(active):
                _list_until(
                    connection,
                    client,
                    total,
                    stop_at=oldest_id,
                    stop_before=oldest_created,
                    max_pages=None,
                    pricer=pricer,
                    on_page=on_page,
                )
            else:
                _list_until(
                    connection, client, total, stop_at=None, max_pages=1, pricer=pricer, on_page=on_page
                )
                stale = [batch_id for batch_id, _ in active if batch_id not in total.seen_ids]
                for batch_id in stale:
                    observed_at = timezone.now()
                    try:
                        api_batch = client.retrieve_batch(batch_id)
                    except APIError as error:
                        if getattr(error, "status_code", None) == 404:
                            continue  # gone from the API: keep the last known state
                        raise
                    total.add(upsert_batches(connection, [api_batch], observed_at=observed_at, pricer=pricer))
                    if on_page:
                        on_page()
    finally:
        total.api_calls = client.calls - calls_before
        if own_client:
            client.close()
    _reprice_if_prices_changed(pricer, total)
    return total


def _list_until(
    connection: Connection,
    client: BatchAPIClient,
    total: SyncResult,
    *,
    stop_at: str | None,
    max_pages: int | None,
    pricer: costs.Pricer,
    on_page: Callable[[], object] | None,
    stop_before: datetime | None = None,
) -> None:
    """List pages newest first until `stop_at` is seen, or a page reaches back before `stop_before`
    (the batch to stop at is no longer listed: the pages after hold only older batches), or after
    `max_pages`."""
    for page in client.list_batch_pages(limit=PAGE_SIZE):
        total.pages += 1
        _note_skipped(connection, page, total)
        total.add(upsert_batches(connection, page.data, observed_at=timezone.now(), pricer=pricer))
        if on_page:
            on_page()
        if stop_at is not None and stop_at in total.seen_ids:
            return
        if stop_before is not None and _reaches_before(page.data, stop_before):
            return
        if max_pages is not None and total.pages >= max_pages:
            return


def _reaches_before(api_batches: Sequence[ApiBatch], moment: datetime) -> bool:
    oldest = min((b.created_at for b in api_batches if b.created_at is not None), default=None)
    return oldest is not None and oldest < moment
