"""Reads for bulk cancel: what a selection holds, how many batches of the list's filters may be
cancelled, and how far a bulk cancel has come."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, QuerySet

from batches.models import Batch, BulkCancel, BulkCancelItem
from batches.selectors import BatchFilters
from batches.statuses import CANCELLABLE_STATUSES

# One bulk cancel holds at most this many batches, so that a request, its items and its progress page
# stay bounded; a larger selection is refused with a request to narrow the filters.
BULK_CANCEL_LIMIT = 10_000
# The latest problems (refused, failed) the progress page lists by name.
PROBLEMS_SHOWN = 20


def cancellable_matching(counts: dict[str, int], filters: BatchFilters) -> int:
    """How many batches the list's filters match that may be cancelled, from the status counts the
    page has anyway (selectors.status_counts), so that offering "all N" costs no query of its own."""
    wanted = [s for s in CANCELLABLE_STATUSES if not filters.statuses or s in filters.statuses]
    return sum(counts.get(status, 0) for status in wanted)


def selected_batches(batch_pks: Sequence[int], filters: BatchFilters | None) -> QuerySet[Batch]:
    """The cancellable batches chosen by their keys, or every one the filters match (filters win)."""
    queryset = Batch.objects.filter(status__in=CANCELLABLE_STATUSES)
    if filters is not None:
        return filters.apply(queryset)
    return queryset.filter(pk__in=list(batch_pks))


@dataclass(frozen=True)
class SelectionSummary:
    count: int
    connections: list[str]
    too_many: bool


def summarize(batches: QuerySet[Batch]) -> SelectionSummary:
    """What the confirmation names: how many batches, on which connections."""
    per_connection = list(
        batches.order_by()
        .values_list("connection__name")
        .annotate(n=Count("id"))
        .order_by("connection__name")
    )
    count = sum(n for _, n in per_connection)
    return SelectionSummary(
        count=count,
        connections=[name for name, _ in per_connection],
        too_many=count > BULK_CANCEL_LIMIT,
    )


@dataclass(frozen=True)
class BulkProgress:
    bulk: BulkCancel
    total: int
    pending: int  # not yet answered: waiting, being sent, or waiting out a rate limit
    done: int
    already_finished: int
    refused: int
    failed: int
    waiting: int  # of the pending, those due later: after a 429's retry-after or a failed attempt's backoff
    problems: list[BulkCancelItem]

    @property
    def finished(self) -> bool:
        return self.bulk.finished_at is not None or (self.total > 0 and self.pending == 0)

    @property
    def answered(self) -> int:
        return self.total - self.pending

    @property
    def percent(self) -> int:
        return round(100 * self.answered / self.total) if self.total else 100


def bulk_progress(bulk: BulkCancel) -> BulkProgress:
    """Counts per state in one query, plus the latest problems by name."""
    State = BulkCancelItem.State
    counts = dict.fromkeys(State.values, 0)
    for state, n in bulk.items.order_by().values_list("state").annotate(n=Count("id")):
        counts[state] = n
    waiting = bulk.items.filter(state=State.PENDING, not_before__isnull=False).count()
    problems = list(
        bulk.items.filter(state__in=(State.REFUSED, State.FAILED))
        .select_related("batch")
        .order_by("-pk")[:PROBLEMS_SHOWN]
    )
    return BulkProgress(
        bulk=bulk,
        total=sum(counts.values()),
        pending=counts[State.PENDING] + counts[State.SENDING],
        done=counts[State.DONE],
        already_finished=counts[State.ALREADY_FINISHED],
        refused=counts[State.REFUSED],
        failed=counts[State.FAILED],
        waiting=waiting,
        problems=problems,
    )


def get_bulk(pk: int) -> BulkCancel | None:
    return BulkCancel.objects.select_related("user").filter(pk=pk).first()
