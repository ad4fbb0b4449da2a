"""How full syncs and refreshes share a connection's API calls (batches/schedule.py, batches/pacing.py,
batches/tasks.py): idle, at most one list call a minute, full syncs included; watched, a full sync every
full_sync_interval that stands in for the refresh due with it. On the private Redis the suite starts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from batches import live, pacing, schedule, sync, tasks
from batches.models import Batch, Connection
from tests.support.factories import make_batch, make_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection() -> Connection:
    return make_connection(name="scheduled", refresh_interval=5, full_sync_interval=300)


def _set(connection: Connection, **fields) -> None:
    Connection.objects.filter(pk=connection.pk).update(**fields)
    connection.refresh_from_db()


def test_an_idle_full_sync_waits_for_the_refreshs_turn_and_runs_in_its_place(connection):
    now = timezone.now()
    _set(connection, next_full_sync_at=now, next_refresh_at=now + timedelta(seconds=40))
    assert schedule.claim_due_work(connection, now) == []  # idle: the refresh's turn is in 40 s
    turn = now + timedelta(seconds=40)
    assert schedule.claim_due_work(connection, turn) == ["full_sync"]
    connection.refresh_from_db()
    # The refresh's slot went with it (taken as a claim takes it), and the next full sync is the idle
    # interval after the one that was due.
    assert connection.next_refresh_at == turn + timedelta(seconds=60)
    assert connection.next_full_sync_at == now + timedelta(seconds=900)
    assert schedule.claim_due_work(connection, turn) == []


def test_idle_full_syncs_come_every_fifteen_minutes_watched_ones_at_their_own_interval(connection, settings):
    assert settings.SYNC_IDLE_FULL_SYNC_SECONDS == 900
    assert pacing.full_sync_interval(connection, watched=False) == 900
    assert pacing.full_sync_interval(connection, watched=True) == 300
    _set(connection, full_sync_interval=3600)  # a connection's own longer interval stands
    assert pacing.full_sync_interval(connection, watched=False) == 3600


def test_a_watched_full_sync_runs_when_due_in_the_place_of_the_refresh_due_with_it(connection):
    now = timezone.now()
    _set(connection, next_full_sync_at=now, next_refresh_at=now)
    live.watch_and_read([str(connection.pk)])
    assert schedule.claim_due_work(connection, now) == ["full_sync"]
    connection.refresh_from_db()
    assert connection.next_full_sync_at == now + timedelta(seconds=300)
    assert connection.next_refresh_at == now + timedelta(seconds=5)


def test_a_watched_full_sync_does_not_wait_for_the_refreshs_turn(connection):
    now = timezone.now()
    _set(connection, next_full_sync_at=now, next_refresh_at=now + timedelta(seconds=4))
    live.watch_and_read([str(connection.pk)])
    assert schedule.claim_due_work(connection, now) == ["full_sync"]
    connection.refresh_from_db()
    assert connection.next_refresh_at == now + timedelta(seconds=4)  # not its slot: left alone


def test_a_page_that_starts_watching_pulls_in_a_full_sync_waiting_at_the_idle_pace(connection):
    now = timezone.now()
    last = now - timedelta(seconds=400)  # the last full sync, claimed at the idle pace
    _set(
        connection,
        next_full_sync_at=last + timedelta(seconds=900),
        next_refresh_at=now + timedelta(seconds=3),
    )
    assert schedule.claim_due_work(connection, now) == []
    live.watch_and_read([str(connection.pk)])
    # 400 s since the last one, more than the watched interval of 300 s: due now, and then every 300 s.
    assert schedule.claim_due_work(connection, now) == ["full_sync"]
    connection.refresh_from_db()
    assert connection.next_full_sync_at == now + timedelta(seconds=300)
    assert schedule.claim_due_work(connection, now + timedelta(seconds=1)) == []


def test_a_watched_page_does_not_pull_in_a_full_sync_that_ran_recently(connection):
    now = timezone.now()
    last = now - timedelta(seconds=100)
    _set(
        connection,
        next_full_sync_at=last + timedelta(seconds=900),
        next_refresh_at=now + timedelta(seconds=3),
    )
    live.watch_and_read([str(connection.pk)])
    assert schedule.claim_due_work(connection, now) == []
    assert schedule.claim_due_work(connection, last + timedelta(seconds=300)) == ["full_sync"]


def test_an_idle_full_sync_of_several_calls_puts_the_next_refresh_as_many_intervals_later(connection):
    assert pacing.next_refresh_delay(connection, calls=1) == 60
    assert pacing.next_refresh_delay(connection, calls=3) == 180
    assert pacing.next_refresh_delay(connection, calls=0) == 60
    # A long walk does not leave the active batches unrefreshed for longer than a few intervals.
    assert pacing.next_refresh_delay(connection, calls=100) == 60 * pacing.IDLE_CATCH_UP_INTERVALS
    live.watch_and_read([str(connection.pk)])
    assert pacing.next_refresh_delay(connection, calls=3) == 5  # watched: the budget paces it


def _next_refresh_in(connection: Connection, since) -> float:
    connection.refresh_from_db()
    assert connection.next_refresh_at is not None
    return (connection.next_refresh_at - since).total_seconds()


def test_a_full_sync_that_saw_every_active_batch_postpones_the_refresh_and_spends_its_calls(
    simulator_connection, simulator
):
    sync.full_sync(simulator_connection)  # the complete walk of a new connection
    # Forgotten, so that the next (incremental) walk finds them again page after page.
    Batch.objects.filter(
        pk__in=Batch.objects.order_by("-created_at").values_list("pk", flat=True)[: sync.PAGE_SIZE + 50]
    ).delete()
    now = timezone.now()
    _set(simulator_connection, next_refresh_at=now)
    outcome = tasks.full_sync_batches(simulator_connection.pk)
    calls = int(outcome.split(", ")[-1].removesuffix(" API calls"))
    assert calls >= 2, outcome
    # Idle: a minute per list call it made, in the place of the refresh.
    assert 60 * calls <= _next_refresh_in(simulator_connection, now) <= 60 * calls + 5
    assert pacing.calls_in_last_minute(simulator_connection.pk) == calls


def test_after_a_complete_walk_the_refresh_follows_an_interval_later(simulator_connection, simulator):
    now = timezone.now()
    _set(simulator_connection, next_refresh_at=now)
    tasks.full_sync_batches(simulator_connection.pk)  # a new connection's first: a complete walk
    pages = -(-simulator.count() // sync.PAGE_SIZE)
    assert pacing.calls_in_last_minute(simulator_connection.pk) == pages > 1
    assert 60 <= _next_refresh_in(simulator_connection, now) <= 65


def test_an_incremental_full_sync_stops_once_it_has_seen_every_active_batch(simulator_connection, simulator):
    first = sync.full_sync(simulator_connection)
    newest_first = list(
        Batch.objects.order_by("-created_at", "-batch_id").values_list("is_terminal", flat=True)
    )
    oldest_active = max(index for index, terminal in enumerate(newest_first) if not terminal)
    again = sync.full_sync(simulator_connection, complete=False)
    assert again.api_calls == oldest_active // sync.PAGE_SIZE + 1 < first.api_calls
    assert again.refreshed_active


def test_a_full_sync_that_stopped_before_an_active_batch_says_it_did_not_refresh_it(
    simulator_connection, simulator
):
    first = sync.full_sync(simulator_connection)
    assert first.refreshed_active  # it walked the whole list
    # Active in the database but not listed where the next sync stops: a walk that stops early has
    # not refreshed it.
    make_batch(
        simulator_connection,
        status="in_progress",
        created_at=Batch.objects.order_by("created_at").first().created_at - timedelta(days=1),
    )
    again = sync.full_sync(simulator_connection, complete=False)
    assert again.pages < first.pages
    assert not again.refreshed_active


def test_a_refresh_stops_listing_once_past_its_oldest_active_batch_even_if_that_is_gone(
    simulator_connection, simulator
):
    sync.full_sync(simulator_connection)
    listed = list(Batch.objects.order_by("-created_at").values_list("created_at", flat=True))
    # The only active batches, no longer listed by the API, created between the first and second
    # pages: two, so that listing (two pages) is cheaper than the first page and two retrieves.
    Batch.objects.update(is_terminal=True)
    between = listed[sync.PAGE_SIZE - 1] - (listed[sync.PAGE_SIZE - 1] - listed[sync.PAGE_SIZE]) / 2
    for _ in range(2):
        make_batch(simulator_connection, status="in_progress", created_at=between)
    result = sync.refresh_active(simulator_connection)
    assert len(listed) > 2 * sync.PAGE_SIZE
    assert (result.api_calls, result.pages) == (2, 2)  # not the whole list
