"""How fast a connection is refreshed (batches/pacing.py): the watcher register, the API budget, and
what beat's dispatcher claims, every second (batches/schedule.py). All on the private Redis the suite
starts."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from batches import live, pacing, schedule
from batches.models import Connection
from tests.support.factories import make_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection() -> Connection:
    return make_connection(name="paced", refresh_interval=5)


def test_a_watched_connection_refreshes_at_its_own_interval_an_idle_one_every_minute(connection, settings):
    assert pacing.refresh_interval(connection) == settings.SYNC_IDLE_REFRESH_SECONDS == 60
    live.watch_and_read([str(connection.pk)])
    assert pacing.refresh_interval(connection) == 5


def test_a_page_showing_every_connection_watches_each_of_them(connection):
    other = make_connection(name="other")
    live.watch_and_read([live.EVERY_CONNECTION])
    assert live.is_watched(connection.pk) and live.is_watched(other.pk)


def test_watching_ends_by_itself_after_its_time_to_live(connection):
    live.watch_and_read([str(connection.pk)])
    assert live.is_watched(connection.pk)
    live.client().pexpire(f"{live.WATCH_PREFIX}{connection.pk}", 1)  # as if its 30 s were over
    time.sleep(0.05)
    assert not live.is_watched(connection.pk)


def test_the_budget_refuses_the_call_beyond_it_and_says_how_long_to_wait(connection, settings):
    settings.SYNC_API_CALLS_PER_MINUTE = 20
    assert [pacing.take_call(connection.pk) for _ in range(20)] == [0.0] * 20
    wait = pacing.take_call(connection.pk)
    assert 59 < wait <= 60
    assert pacing.calls_in_last_minute(connection.pk) == 20  # the refused call is not counted
    assert 59 < pacing.budget_wait(connection.pk) <= 60


def test_calls_already_made_count_against_the_budget(connection, settings):
    settings.SYNC_API_CALLS_PER_MINUTE = 20
    pacing.spend_calls(connection.pk, 19)
    assert pacing.take_call(connection.pk) == 0.0
    assert pacing.take_call(connection.pk) > 0
    assert pacing.calls_in_last_minute(connection.pk) == 20


def test_each_connection_has_a_budget_of_its_own(connection, settings):
    settings.SYNC_API_CALLS_PER_MINUTE = 1
    other = make_connection(name="other")
    assert pacing.take_call(connection.pk) == 0.0
    assert pacing.take_call(other.pk) == 0.0
    assert pacing.take_call(connection.pk) > 0


def test_the_next_refresh_waits_for_a_backoff_or_the_budget(connection):
    live.watch_and_read([str(connection.pk)])
    assert pacing.next_refresh_delay(connection) == 5
    assert pacing.next_refresh_delay(connection, budget_wait=42.0) == 42.0
    connection.next_attempt_at = timezone.now() + timedelta(seconds=30)
    assert 29 < pacing.next_refresh_delay(connection) <= 30


def test_beat_claims_a_refresh_as_soon_as_it_is_due_and_only_once(connection):
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        next_full_sync_at=now + timedelta(hours=1), next_refresh_at=now + timedelta(seconds=5)
    )
    connection.refresh_from_db()
    live.watch_and_read([str(connection.pk)])
    assert schedule.claim_due_work(connection, now + timedelta(seconds=4.9)) == []
    due = now + timedelta(seconds=5)
    assert schedule.claim_due_work(connection, due) == ["refresh"]  # no lateness allowed for
    assert schedule.claim_due_work(connection, due) == []  # a second tick (or dispatcher) with the same view
    connection.refresh_from_db()
    assert connection.next_refresh_at == due + timedelta(seconds=5)


def test_a_refresh_that_never_ended_is_claimed_again_one_interval_later(connection):
    """Its worker died, or its message went with the broker: the claim itself set the next due time."""
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        next_full_sync_at=now + timedelta(hours=1), next_refresh_at=now
    )
    connection.refresh_from_db()
    live.watch_and_read([str(connection.pk)])
    assert schedule.claim_due_work(connection, now) == ["refresh"]
    connection.refresh_from_db()
    assert schedule.claim_due_work(connection, now + timedelta(seconds=4)) == []
    assert schedule.claim_due_work(connection, now + timedelta(seconds=5)) == ["refresh"]


def test_beat_pulls_in_an_idle_refresh_when_a_page_starts_watching(connection):
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        next_full_sync_at=now + timedelta(hours=1), next_refresh_at=now + timedelta(seconds=50)
    )
    connection.refresh_from_db()
    assert schedule.claim_due_work(connection, now) == []  # idle: its next refresh in 50 s stands
    live.watch_and_read([str(connection.pk)])
    assert schedule.claim_due_work(connection, now) == ["refresh"]
    connection.refresh_from_db()
    assert connection.next_refresh_at == now + timedelta(seconds=5)
    assert schedule.claim_due_work(connection, now) == []


def test_a_refresh_records_when_the_next_is_due_instead_of_scheduling_it(connection, monkeypatch):
    """No countdown message is published (a worker holding one crashes when Redis drops): the next
    run's due time goes to the database for beat, and to Redis for the pages."""
    from batches import tasks

    def no_message(*args: object, **kwargs: object) -> None:
        raise AssertionError("a refresh published a message")

    for task in (tasks.refresh_active_batches, tasks.full_sync_batches):
        monkeypatch.setattr(task, "apply_async", no_message)
        monkeypatch.setattr(task, "delay", no_message)
    live.watch_and_read([str(connection.pk)])
    before = time.time()
    tasks.refresh_active_batches(connection.pk)
    connection.refresh_from_db()
    assert connection.next_refresh_at is not None
    due = connection.next_refresh_at.timestamp()
    assert before + 5 <= due <= time.time() + 5
    assert live.watch_and_read([str(connection.pk)]).next_refresh_of([str(connection.pk)]) == pytest.approx(
        due, abs=0.01
    )


def test_beat_dispatches_from_two_queries_when_nothing_is_due(connection, django_assert_num_queries):
    # It runs every second: one query reads the connections, one looks for bulk cancels to run.
    from batches import tasks

    now = timezone.now()
    make_connection(name="other")
    Connection.objects.update(
        next_full_sync_at=now + timedelta(hours=1), next_refresh_at=now + timedelta(seconds=30)
    )
    with django_assert_num_queries(2):
        assert tasks.dispatch_due_syncs() == []


def test_beat_does_not_pull_in_a_refresh_that_waits_for_its_budget(connection, settings):
    settings.SYNC_API_CALLS_PER_MINUTE = 1
    assert pacing.take_call(connection.pk) == 0.0
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        next_full_sync_at=now + timedelta(hours=1), next_refresh_at=now + timedelta(seconds=55)
    )
    connection.refresh_from_db()
    live.watch_and_read([str(connection.pk)])
    assert schedule.claim_due_work(connection, now) == []
