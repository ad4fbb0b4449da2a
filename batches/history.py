"""Reads for the history charts: the snapshots of one batch, and the outcomes of the
last days in one aggregate query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, QuerySet
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from batches.models import Batch, ProgressSnapshot
from batches.statuses import STATUS_TIMESTAMP_FIELD, TERMINAL_STATUSES


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    completed: int
    failed: int
    total: int

    @property
    def done(self) -> int:
        return self.completed + self.failed


# The most snapshots a chart is drawn from. A running batch gets one at every refresh in which its
# counts moved (about 17,000 in a day at the watched 5 s); housekeeping thins a batch to at most 300
# once it has finished (housekeeping/thinning.py), so this only ever samples running or just-finished
# batches. Reading and converting all of a day's snapshots was 0.45 s of a running batch's detail page
# at a year's size (bench_year.py); charts 720 px wide show no more than this many points anyway.
MAX_POINTS = 1000


def snapshots(batch: Batch, limit: int | None = None) -> list[Snapshot]:
    """The batch's snapshots in time order; beyond `limit` (MAX_POINTS), an even sample of them picked
    by the database (the first, the last and every k-th), so the page never converts thousands of rows."""
    limit = limit or MAX_POINTS
    table = ProgressSnapshot._meta.db_table
    # Numbered in the order of one_snapshot_per_count (batch, completed, failed, total), which is time
    # order because counts only grow: the numbering reads that index alone, and only the picked rows
    # are fetched from the table (numbering by taken_at fetched and sorted every row: 0.45 s at 17,000,
    # plus a sort). Window functions: SQLite >= 3.25 and PostgreSQL; integer division on both (the cast:
    # PostgreSQL may take a parameter as numeric).
    rows = ProgressSnapshot.objects.raw(
        f"""
        SELECT s.id, s.taken_at, s.completed, s.failed, s.total
        FROM {table} AS s JOIN (
            SELECT id FROM (
                SELECT id,
                       ROW_NUMBER() OVER (ORDER BY completed, failed, total, id) AS n,
                       COUNT(*) OVER () AS c
                FROM {table} WHERE batch_id = %s
            ) AS numbered
            WHERE c <= %s OR n = 1 OR n = c OR n %% ((c + %s - 1) / CAST(%s AS INTEGER)) = 0
        ) AS picked ON picked.id = s.id
        ORDER BY s.taken_at, s.id
        """,
        [batch.pk, limit, limit, limit],
    )
    return [Snapshot(row.taken_at, row.completed, row.failed, row.total) for row in rows]


def progress_points(batch: Batch, history: list[Snapshot]) -> list[tuple[datetime, int]]:
    """(time, requests done) from the moment the batch started running. The API counts from zero at
    in_progress_at, which anchors the history even when the dashboard first saw the batch mid-way."""
    start = batch.in_progress_at
    points = [(s.at, s.done) for s in history if start is None or s.at >= start]
    if start is not None and (not points or points[0][0] > start):
        points.insert(0, (start, 0))
    return points


def outcomes_by_day(
    queryset: QuerySet[Batch] | None = None, *, days: int = 7, now: datetime | None = None
) -> tuple[list[date], dict[tuple[date, str], int]]:
    """Finished batches per day of their outcome and per outcome, over the last `days` days (today
    included), in one GROUP BY query."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    day_list = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    start = datetime.combine(day_list[0], datetime.min.time(), tzinfo=timezone.get_current_timezone())
    rows = (
        (queryset if queryset is not None else Batch.objects.all())
        .filter(status__in=TERMINAL_STATUSES)
        .alias(finished_at=Coalesce(*(STATUS_TIMESTAMP_FIELD[status] for status in TERMINAL_STATUSES)))
        .filter(finished_at__gte=start)
        .annotate(day=TruncDate("finished_at"))
        .values("day", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return day_list, {(row["day"], row["status"]): row["n"] for row in rows}
