"""The one ETA: the sync's two-point estimate, the range every page shows around it, rates for people."""

from datetime import UTC, datetime, timedelta

import pytest

from batches.eta import NO_ESTIMATE, RECENT_WEIGHT, estimate, rate_text, stored_range

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return START + timedelta(minutes=n)


def close_to(moment: datetime | None, expected: datetime, seconds: float = 1.0) -> bool:
    return moment is not None and abs((moment - expected).total_seconds()) <= seconds


def stored(done: int, total: int, at: float, previous_done: int, previous_at: float):
    """What the sync stores at `at` minutes, then the range the pages show from those columns."""
    guess = estimate(
        done=done,
        total=total,
        in_progress_at=minutes(0),
        now=minutes(at),
        previous_done=previous_done,
        previous_at=minutes(previous_at),
    )
    return guess, stored_range(
        done=done,
        total=total,
        in_progress_at=minutes(0),
        measured_at=minutes(at),
        rate_per_minute=guess.rate_per_minute,
        eta_at=guess.eta_at,
    )


def test_the_two_point_estimate_weighs_the_recent_rate_over_the_average():
    guess = estimate(
        done=300,
        total=1000,
        in_progress_at=minutes(0),
        now=minutes(30),
        previous_done=200,
        previous_at=minutes(20),
    )
    assert guess.rate_per_minute == pytest.approx(10)
    assert close_to(guess.eta_at, minutes(100))


def test_a_steady_batch_has_one_answer_with_no_spread():
    guess, shown = stored(300, 1000, 30, 200, 20)  # 10 a minute all along
    assert shown.eta_at == guess.eta_at
    assert close_to(shown.earliest_at, minutes(100)) and close_to(shown.latest_at, minutes(100))


def test_a_batch_speeding_up_is_expected_between_its_recent_and_its_average_rate():
    # 5 a minute for 30 minutes, then 20 a minute for 10: 350 done after 40 minutes.
    guess, shown = stored(350, 1000, 40, 150, 30)
    expected_rate = RECENT_WEIGHT * 20 + (1 - RECENT_WEIGHT) * 350 / 40
    assert shown.rate_per_minute == pytest.approx(expected_rate)
    assert shown.average_rate == pytest.approx(350 / 40)
    assert shown.eta_at == guess.eta_at
    assert shown.earliest_at is not None and shown.latest_at is not None
    assert shown.earliest_at < shown.eta_at < shown.latest_at
    assert close_to(shown.earliest_at, minutes(40 + 650 / 20))  # at the recent rate
    assert close_to(shown.latest_at, minutes(40 + 650 / (350 / 40)))


def test_a_batch_slowing_down_has_its_average_as_the_early_bound():
    _, shown = stored(500, 1000, 40, 490, 30)  # 1 a minute lately, 12.5 on average
    assert shown.earliest_at is not None and shown.latest_at is not None
    assert close_to(shown.earliest_at, minutes(40 + 500 / 12.5))  # at the average
    assert close_to(shown.latest_at, minutes(40 + 500 / 1))  # at the recent rate
    assert shown.earliest_at < shown.eta_at < shown.latest_at


def test_the_range_is_the_same_whenever_it_is_rendered():
    # It reads stored columns only: no clock, so the list's row and the detail page agree.
    _, first = stored(350, 1000, 40, 150, 30)
    _, again = stored(350, 1000, 40, 150, 30)
    assert first == again


def test_no_stored_eta_means_no_estimate():
    assert (
        stored_range(
            done=0, total=100, in_progress_at=minutes(0), measured_at=None, rate_per_minute=None, eta_at=None
        )
        == NO_ESTIMATE
    )


def test_an_eta_without_a_start_is_shown_as_a_point():
    shown = stored_range(
        done=10,
        total=100,
        in_progress_at=None,
        measured_at=minutes(5),
        rate_per_minute=2.0,
        eta_at=minutes(50),
    )
    assert shown.eta_at == shown.earliest_at == shown.latest_at == minutes(50)


@pytest.mark.parametrize(
    ("per_minute", "text"),
    [
        (0, "0/min"),
        (0.04, "<0.1/min"),
        (0.44, "0.4/min"),
        (7.49, "7.5/min"),
        (12.3, "12/min"),
        (950.2, "950/min"),
        (999.4, "999/min"),
        (999.6, "1.0k/min"),
        (7696.9, "7.7k/min"),
        (12_345, "12k/min"),
        (999_600, "1.0M/min"),
        (1_234_567, "1.2M/min"),
        (None, ""),
    ],
)
def test_rates_are_rounded_for_people(per_minute, text):
    assert rate_text(per_minute) == text
