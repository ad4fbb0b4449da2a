"""ETA from synthetic snapshot histories: the recent rate weighed over the average, with a range."""

from datetime import UTC, datetime, timedelta

import pytest

from batches.eta import NO_ESTIMATE, RECENT_WEIGHT, estimate, estimate_from_history

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return START + timedelta(minutes=n)


def close_to(moment: datetime | None, expected: datetime, seconds: float = 1.0) -> bool:
    return moment is not None and abs((moment - expected).total_seconds()) <= seconds


def test_a_steady_history_gives_one_answer_with_no_spread():
    points = [(minutes(m), 10 * m) for m in range(0, 31)]  # 10 requests a minute for 30 minutes
    guess = estimate_from_history(points, total=1000, now=minutes(30))
    assert guess.rate_per_minute == pytest.approx(10)
    assert close_to(guess.eta_at, minutes(30 + 70))
    assert close_to(guess.earliest_at, minutes(100)) and close_to(guess.latest_at, minutes(100))


def test_a_batch_speeding_up_is_expected_sooner_than_its_average_says():
    slow = [(minutes(m), 5 * m) for m in range(0, 31)]  # 5 a minute, then 20 a minute
    fast = [(minutes(30 + m), 150 + 20 * m) for m in range(1, 11)]
    guess = estimate_from_history(slow + fast, total=1000, now=minutes(40))
    assert guess.recent_rate == pytest.approx(20)
    assert guess.average_rate == pytest.approx(350 / 40)
    expected_rate = RECENT_WEIGHT * 20 + (1 - RECENT_WEIGHT) * 350 / 40
    assert guess.rate_per_minute == pytest.approx(expected_rate)
    assert close_to(guess.eta_at, minutes(40 + 650 / expected_rate))
    at_average = minutes(40 + 650 / (350 / 40))
    assert guess.earliest_at < guess.eta_at < guess.latest_at
    assert close_to(guess.earliest_at, minutes(40 + 650 / 20))
    assert close_to(guess.latest_at, at_average)


def test_a_stalled_batch_has_no_upper_bound_and_a_later_eta():
    # 10 a minute for 20 minutes, then nothing new for 15 minutes: no snapshot is written when nothing
    # changes, so the history just stops.
    points = [(minutes(m), 10 * m) for m in range(0, 21)]
    guess = estimate_from_history(points, total=1000, now=minutes(35))
    assert guess.recent_rate == 0
    assert guess.average_rate == pytest.approx(200 / 35)
    assert guess.latest_at is None
    assert close_to(guess.earliest_at, minutes(35 + 800 / (200 / 35)))
    assert guess.eta_at > guess.earliest_at


def test_a_batch_with_no_requests_has_no_estimate():
    assert estimate_from_history([(minutes(0), 0), (minutes(5), 0)], total=0, now=minutes(5)) == NO_ESTIMATE
    assert estimate_from_history([], total=100, now=minutes(5)) == NO_ESTIMATE


def test_a_batch_that_never_moved_has_no_eta():
    guess = estimate_from_history([(minutes(0), 0)], total=100, now=minutes(30))
    assert guess.rate_per_minute == 0 and guess.eta_at is None and guess.latest_at is None


def test_a_finished_count_is_its_own_eta():
    guess = estimate_from_history([(minutes(0), 0), (minutes(9), 100)], total=100, now=minutes(12))
    assert guess.eta_at == guess.earliest_at == guess.latest_at == minutes(9)


def test_points_out_of_order_or_going_back_are_read_as_a_growing_count():
    points = [(minutes(20), 200), (minutes(0), 0), (minutes(10), 100), (minutes(15), 90)]
    guess = estimate_from_history(points, total=400, now=minutes(20))
    assert guess.average_rate == pytest.approx(10)
    assert close_to(guess.eta_at, minutes(40))


def test_the_two_point_estimate_keeps_working():
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
