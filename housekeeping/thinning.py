"""Which progress snapshots of a finished batch to keep: a pure function, no Django.

A running batch gets a snapshot at every refresh in which its counts moved (every 5 s while a page
watches it), thousands for a long batch, while its charts (batches/charts.py) draw at most 240 line
points and 48 throughput buckets. Once the batch is finished its history no longer grows, so most of
those rows can go, as long as the charts drawn from what is left look the same:

- the first and the last snapshot, and the first one from the moment the batch started running (the
  charts' time axis runs between them);
- around every status change, the snapshot just before and the one just after it (the phases' edges);
- an even spread in time: the two snapshots either side of each edge of the throughput chart's
  THROUGHPUT_BUCKETS buckets, so that the chart, which reads the count at each edge as a line
  between those two, draws exactly the same rates;
- and where the line bends between those, the points that a straight line between their neighbours
  would miss by more than TOLERANCE of the batch's requests (Ramer-Douglas-Peucker), so stalls and
  bursts keep their shape. A steady batch needs few of these; a batch whose bends would need more than
  LIMIT points in all gets an even spread of LIMIT instead.

The result is deterministic and idempotent: thinning a thinned history keeps all of it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from batches.charts import THROUGHPUT_BUCKETS

LIMIT = 300
# 0.05 % of the requests: a tenth of a pixel on the 150-pixel-high plot of the progress chart.
TOLERANCE = 0.0005


@dataclass(frozen=True, slots=True)
class Point:
    """One stored snapshot as thinning sees it."""

    id: int
    at: datetime
    completed: int
    failed: int
    total: int


def points_to_keep(
    points: Sequence[Point],
    *,
    started_at: datetime | None = None,
    status_changes: Iterable[datetime] = (),
    limit: int = LIMIT,
) -> set[int]:
    """The ids of the snapshots to keep; every id of `points` not in it may be deleted. `points` are
    sorted by (at, id), as the charts read them."""
    count = len(points)
    if count <= 2:
        return {p.id for p in points}
    times = [p.at.timestamp() for p in points]
    fixed = {0, count - 1}
    if started_at is not None:
        index = bisect_left(times, started_at.timestamp())
        if index < count:
            fixed.add(index)
    for moment in status_changes:
        index = bisect_left(times, moment.timestamp())
        fixed.update(i for i in (index - 1, index) if 0 <= i < count)
    spread = _bucket_edges(times, started_at)
    kept = fixed | spread
    kept |= _bends(points, times, sorted(kept))
    if len(kept) > limit:
        # More bends than the budget: an even spread of what is left of it instead.
        kept = fixed | spread | _even_spread(times, max(limit - len(fixed | spread), 0))
    return {points[i].id for i in kept}


def _bucket_edges(times: Sequence[float], started_at: datetime | None) -> set[int]:
    """The indexes either side of every bucket edge of the throughput chart, computed as
    batches.charts.throughput_rates computes them for a finished batch: from the moment it started
    running (batches.history.progress_points) to its last snapshot."""
    x0 = times[0] if started_at is None else started_at.timestamp()
    x1 = times[-1]
    if x1 <= x0:
        return set()
    width = (x1 - x0) / THROUGHPUT_BUCKETS
    chosen: set[int] = set()
    for index in range(THROUGHPUT_BUCKETS):
        for edge in (x0 + index * width, x0 + (index + 1) * width):
            after = bisect_left(times, edge)
            chosen.update(i for i in (after - 1, after) if 0 <= i < len(times))
    return chosen


def _even_spread(times: Sequence[float], wanted: int) -> set[int]:
    """The index of the point nearest each of `wanted` evenly spaced moments from first to last."""
    if wanted <= 0:
        return set()
    first, last = times[0], times[-1]
    if last <= first or wanted == 1:
        return {0}
    chosen: set[int] = set()
    for step in range(wanted):
        moment = first + (last - first) * step / (wanted - 1)
        index = bisect_left(times, moment)
        if index > 0 and (index == len(times) or moment - times[index - 1] <= times[index] - moment):
            index -= 1
        chosen.add(index)
    return chosen


def _bends(points: Sequence[Point], times: Sequence[float], anchors: list[int]) -> set[int]:
    """Ramer-Douglas-Peucker between consecutive anchors, on the share of requests done and failed
    over time: the indexes whose distance (vertically) from the chord exceeds TOLERANCE."""
    kept: set[int] = set()
    stack = list(pairwise(anchors))
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        worst, worst_error = -1, TOLERANCE
        pa, pb = points[a], points[b]
        ta, span = times[a], times[b] - times[a]
        for i in range(a + 1, b):
            p = points[i]
            share = (times[i] - ta) / span if span else 0.0
            error = max(
                abs(_ratio(p.completed + p.failed, p) - _line(pa, pb, share, done=True)),
                abs(_ratio(p.failed, p) - _line(pa, pb, share, done=False)),
            )
            if error > worst_error:
                worst, worst_error = i, error
        if worst >= 0:
            kept.add(worst)
            stack += [(a, worst), (worst, b)]
    return kept


def _ratio(value: int, point: Point) -> float:
    return value / point.total if point.total > 0 else 0.0


def _line(a: Point, b: Point, share: float, *, done: bool) -> float:
    start = _ratio(a.completed + a.failed if done else a.failed, a)
    end = _ratio(b.completed + b.failed if done else b.failed, b)
    return start + (end - start) * share
