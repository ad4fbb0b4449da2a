"""Throughput and ETA from observed progress: pure functions, no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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
