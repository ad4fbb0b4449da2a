"""Reads for a batch's story and the list's week: its phases from the API's own timestamps, the detail
page's charts from its snapshots, and the outcomes of the last seven days (SVG written by batches.charts)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from batches import charts, history
from batches.models import Batch
from batches.selectors import BatchFilters, cached
from batches.statuses import ACTIVE_STATUSES, STATUS_TIMESTAMP_FIELD, TERMINAL_STATUSES


@dataclass(frozen=True)
class Phase:
    name: str
    started_at: datetime | None
    ended_at: datetime | None
    current: bool

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        end = self.ended_at or (timezone.now() if self.current else None)
        return end - self.started_at if end else None


def phases(batch: Batch) -> list[Phase]:
    """The life-cycle from the API's own timestamps: each phase with its start and duration."""
    entered: dict[str, datetime | None] = {
        status: getattr(batch, field) for status, field in STATUS_TIMESTAMP_FIELD.items()
    }
    outcome_at = next((entered[s] for s in TERMINAL_STATUSES if entered[s] is not None), None)
    steps = [(status, entered[status]) for status in ACTIVE_STATUSES]
    started = sorted(((name, at) for name, at in steps if at is not None), key=lambda step: step[1])
    result = []
    for index, (name, at) in enumerate(started):
        next_at = started[index + 1][1] if index + 1 < len(started) else outcome_at
        result.append(Phase(name, at, next_at, current=next_at is None and batch.status == name))
    if outcome_at is not None:
        result.append(Phase(batch.status, outcome_at, None, current=False))
    return result


@dataclass(frozen=True)
class BatchHistory:
    """The detail page's charts (SVG whose every text is escaped by batches.charts)."""

    count: int
    throughput: SafeString
    progress: SafeString


def batch_history(batch: Batch, now: datetime) -> BatchHistory:
    snapshots = history.snapshots(batch)
    until = now if batch.is_active else None
    throughput = charts.throughput_svg(
        history.progress_points(batch, snapshots),
        until=until,
        label=f"Requests of {batch.batch_id} finished per minute over time",
    )
    progress = charts.progress_svg(
        [(s.at, s.completed, s.failed, s.total) for s in snapshots],
        until=until,
        label=f"Percent of the requests of {batch.batch_id} done and failed over time",
    )
    return BatchHistory(
        count=len(snapshots),
        # batches.charts escapes every text it writes into the SVG.
        throughput=mark_safe(throughput),
        progress=mark_safe(progress),
    )


OUTCOMES_CACHE_SECONDS = 60


def outcomes_chart(filters: BatchFilters, now: datetime) -> SafeString:
    """Batches finished per day and outcome over the last 7 days, under the list's filters (but its
    status filter, which would hide whole outcomes, and its sort, which changes nothing here).

    A week-long view needs no second-by-second freshness: the chart is cached for a minute, so that
    reloading the list does not run its aggregate query every time."""
    filters = replace(filters, statuses=(), sort="created", invalid=())
    key = (
        "batches:outcomes-chart:"
        + hashlib.sha256(repr((filters, timezone.localdate(now))).encode()).hexdigest()
    )

    def render() -> str:
        days, counts = history.outcomes_by_day(filters.apply(Batch.objects.all()), days=7, now=now)
        return charts.outcomes_svg(days, counts)

    # batches.charts escapes every text it writes into the SVG.
    return mark_safe(cached(key, render, OUTCOMES_CACHE_SECONDS))
