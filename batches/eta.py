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


# --- the one estimate every page shows ---------------------------------------------------------------


@dataclass(frozen=True)
class EtaRange:
    """The expected end and the span it likely falls in, between the ends at the faster and at the
    slower of the recent rate and the average since the batch began (the ETA itself is at their weighted
    blend). `latest_at` is None when the slower rate is zero (no end in sight)."""

    rate_per_minute: float | None
    average_rate: float | None
    eta_at: datetime | None
    earliest_at: datetime | None
    latest_at: datetime | None

    @property
    def known(self) -> bool:
        return self.eta_at is not None


NO_ESTIMATE = EtaRange(None, None, None, None, None)


def _finish(start: datetime, remaining: int, rate: float) -> datetime | None:
    return start + timedelta(minutes=remaining / rate) if rate > 0 else None


def stored_range(
    *,
    done: int,
    total: int,
    in_progress_at: datetime | None,
    measured_at: datetime | None,
    rate_per_minute: float | None,
    eta_at: datetime | None,
) -> EtaRange:
    """The range around the ETA the sync stored (`estimate` above, at `measured_at`: when progress was
    last seen). It reads stored columns only, so the list's row, the detail page's header and its
    history show the same moments whenever and wherever they are rendered."""
    if eta_at is None:
        return NO_ESTIMATE
    if (
        rate_per_minute is None
        or in_progress_at is None
        or measured_at is None
        or measured_at <= in_progress_at
        or total <= 0
    ):
        return EtaRange(rate_per_minute, None, eta_at, eta_at, eta_at)
    average = done / ((measured_at - in_progress_at).total_seconds() / 60)
    # The stored rate is RECENT_WEIGHT * recent + (1 - RECENT_WEIGHT) * average, with this very average
    # (`estimate` at measured_at): the recent rate follows, with no column of its own.
    recent = max((rate_per_minute - (1 - RECENT_WEIGHT) * average) / RECENT_WEIGHT, 0.0)
    remaining = max(total - done, 0)
    try:
        fast = _finish(measured_at, remaining, max(recent, average))
        slow = _finish(measured_at, remaining, min(recent, average))
    except OverflowError:  # an end beyond the calendar: no bound on that side
        fast, slow = None, None
    return EtaRange(
        rate_per_minute=rate_per_minute,
        average_rate=average,
        eta_at=eta_at,
        # The stored ETA was computed from the same numbers; min/max only guard against rounding.
        earliest_at=min(eta_at, fast) if fast else eta_at,
        latest_at=max(eta_at, slow) if slow else None,
    )


# --- rates for people ---------------------------------------------------------------------------------

_SCALES = ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k"))


def rate_text(per_minute: float | None) -> str:
    """A rate rounded for people: 0.4/min, 12/min, 950/min, 7.7k/min, 77k/min, 1.2M/min. Two or three
    significant digits: the rate moves by more than that between two syncs anyway."""
    if per_minute is None or per_minute < 0:
        return ""
    for size, suffix in _SCALES:
        # 999.7 would round to "1000/min": such a value belongs to the next scale up.
        if per_minute >= size * 0.9995:
            scaled = per_minute / size
            return f"{scaled:.1f}{suffix}/min" if scaled < 9.95 else f"{scaled:.0f}{suffix}/min"
    if per_minute < 9.95:
        return f"{per_minute:.1f}/min" if per_minute >= 0.05 else ("0/min" if not per_minute else "<0.1/min")
    return f"{per_minute:.0f}/min"
