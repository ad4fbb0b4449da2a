"""How fast a connection is refreshed (batches/pacing.py): the watcher register, the API budget, the
refresh chain's links, and what beat's dispatcher still claims (batches/schedule.py). All on the
private Redis the suite starts."""

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


def test_only_the_newest_link_of_a_refresh_chain_is_current(connection):
    first = pacing.new_chain(connection.pk, 5)
    assert pacing.is_current_link(connection.pk, first)
    second = pacing.new_chain(connection.pk, 5)
    assert not pacing.is_current_link(connection.pk, first)
    assert pacing.is_current_link(connection.pk, second)


def test_beat_claims_a_refresh_only_when_its_chain_is_lost_or_a_page_starts_watching(connection, settings):
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        next_full_sync_at=now + timedelta(hours=1), next_refresh_at=now + timedelta(seconds=50)
    )
    connection.refresh_from_db()
    assert schedule.claim_due_work(connection, now) == []  # the chain's next run is on its way
    live.watch_and_read([str(connection.pk)])
    assert schedule.claim_due_work(connection, now) == ["refresh"]  # a page opened: pulled in
    connection.refresh_from_db()
    assert connection.next_refresh_at == now + timedelta(seconds=5)
    late = now + timedelta(seconds=5 + settings.SYNC_CHAIN_GRACE + 1)
    assert schedule.claim_due_work(connection, late) == ["refresh"]  # the chain was lost
    assert schedule.claim_due_work(connection, late) == []  # claimed once


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
