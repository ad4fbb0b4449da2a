"""Throughput and ETA from observed progress: pure functions, no database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

# How much the most recent rate counts against the average since the batch began: recent progress
# predicts the next minutes better, the average damps bursts and pauses.
RECENT_WEIGHT = 0.6


@dataclass(frozen=True)
class Estimate:
    rate_per_minute: float | None
    eta_at: datetime | None


def estimate(
    *,
    done: int,
    total: int,
    in_progress_at: datetime | None,
    now: datetime,
    previous_done: int | None = None,
    previous_at: datetime | None = None,
) -> Estimate:
    """Requests per minute and the expected end, or Nones when there is nothing to go on."""
    if total <= 0 or in_progress_at is None or now <= in_progress_at:
        return Estimate(None, None)
    average = done / ((now - in_progress_at).total_seconds() / 60)
    rate = average
    if previous_done is not None and previous_at is not None and now > previous_at:
        recent = max(done - previous_done, 0) / ((now - previous_at).total_seconds() / 60)
        rate = RECENT_WEIGHT * recent + (1 - RECENT_WEIGHT) * average
    remaining = max(total - done, 0)
    if remaining == 0:
        return Estimate(rate, now)
    if rate <= 0:
        return Estimate(0.0, None)
    return Estimate(rate, now + timedelta(minutes=remaining / rate))


# --- from the snapshot history ----------------------------------------------------------------------

# The recent rate is measured over this much of the latest history.
RECENT_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class EtaRange:
    """The expected end, and the span it likely falls in: `earliest_at` at the faster of the recent and
    the average rate, `latest_at` at the slower (None when that rate is zero: no end in sight)."""

    rate_per_minute: float | None
    recent_rate: float | None
    average_rate: float | None
    eta_at: datetime | None
    earliest_at: datetime | None
    latest_at: datetime | None

    @property
    def known(self) -> bool:
        return self.eta_at is not None


NO_ESTIMATE = EtaRange(None, None, None, None, None, None)


def done_at(points: Sequence[tuple[datetime, int]], moment: datetime) -> float:
    """Requests done at `moment`, reading the points as a line (before the first: its value)."""
    if moment <= points[0][0]:
        return float(points[0][1])
    for (t0, d0), (t1, d1) in pairwise(points):
        if moment <= t1:
            span = (t1 - t0).total_seconds()
            return d1 if span <= 0 else d0 + (d1 - d0) * (moment - t0).total_seconds() / span
    return float(points[-1][1])


def clean_history(points: Iterable[tuple[datetime, int]], now: datetime) -> list[tuple[datetime, int]]:
    """In time order, never going back (counts only grow), nothing after `now`."""
    cleaned: list[tuple[datetime, int]] = []
    highest = 0
    for moment, done in sorted(points, key=lambda point: point[0]):
        highest = max(highest, done)
        cleaned.append((min(moment, now), highest))
    return cleaned


def _finish(now: datetime, remaining: int, rate: float) -> datetime | None:
    return now + timedelta(minutes=remaining / rate) if rate > 0 else None


def estimate_from_history(
    points: Iterable[tuple[datetime, int]],
    *,
    total: int,
    now: datetime,
    recent_window: timedelta = RECENT_WINDOW,
    recent_weight: float = RECENT_WEIGHT,
) -> EtaRange:
    """ETA from (time, requests done) observations: the recent rate weighted over the average since the
    first point, with a range between the two.

    Snapshots are written only when the counts change, so the count is taken to have stayed at its
    last value until `now`: a history that stops moving reads as a falling recent rate, not a stale one.
    """
    history = clean_history(points, now)
    if total <= 0 or not history:
        return NO_ESTIMATE
    last_moment, done = history[-1]
    remaining = max(total - done, 0)
    if remaining == 0:
        return EtaRange(None, None, None, last_moment, last_moment, last_moment)
    if now > last_moment:
        history.append((now, done))
    start, start_done = history[0]
    minutes = (now - start).total_seconds() / 60
    if minutes <= 0:
        return NO_ESTIMATE
    average = (done - start_done) / minutes
    window_start = max(start, now - recent_window)
    window_minutes = (now - window_start).total_seconds() / 60
    recent = (done - done_at(history, window_start)) / window_minutes
    rate = recent_weight * recent + (1 - recent_weight) * average
    return EtaRange(
        rate_per_minute=rate,
        recent_rate=recent,
        average_rate=average,
        eta_at=_finish(now, remaining, rate),
        earliest_at=_finish(now, remaining, max(recent, average)),
        latest_at=_finish(now, remaining, min(recent, average)),
    )
