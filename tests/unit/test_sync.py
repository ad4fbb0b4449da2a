"""The sync services against the simulator: the database mirrors the API, cheaply and safely."""

import itertools
import math
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from batches import connections, schedule, sync, writer
from batches.api.client import BatchAPIClient, ClientConfig
from batches.api.errors import RateLimitError
from batches.models import Batch, BatchStatusChange, Connection, ProgressSnapshot

pytestmark = pytest.mark.django_db


def mirror_matches(simulator, connection) -> None:
    """Field for field: every simulator batch is stored with exactly the JSON the API sends."""
    expected = {b["id"]: b for b in simulator.batches()}
    stored = dict(Batch.objects.filter(connection=connection).values_list("batch_id", "raw"))
    assert set(stored) == set(expected)
    mismatched = [batch_id for batch_id, raw in expected.items() if stored[batch_id] != raw]
    assert mismatched == []


def test_a_full_sync_mirrors_every_batch_field_for_field(simulator_connection, simulator):
    result = sync.full_sync(simulator_connection)
    assert result.created == simulator.count()
    mirror_matches(simulator, simulator_connection)
    for batch in Batch.objects.all()[:50]:
        assert batch.status == batch.raw["status"]
        assert batch.total_requests == (batch.raw.get("request_counts") or {}).get("total", 0)
        assert batch.is_terminal == (batch.status in ("completed", "failed", "expired", "cancelled"))


def test_a_second_full_sync_changes_nothing_and_stops_early(simulator_connection, simulator):
    sync.full_sync(simulator_connection)
    again = sync.full_sync(simulator_connection, complete=False)
    assert again.created == 0
    assert again.updated == 0
    assert again.api_calls < math.ceil(simulator.count() / 100)


def test_moving_batches_are_followed_and_each_change_is_recorded_once(simulator_connection, simulator):
    sync.full_sync(simulator_connection)
    for _ in range(6):
        simulator.advance(seconds=1800)
        sync.refresh_active(simulator_connection)
    sync.full_sync(simulator_connection, complete=True)
    mirror_matches(simulator, simulator_connection)
    assert Batch.objects.filter(connection=simulator_connection).count() == simulator.count()
    for batch in Batch.objects.filter(status="completed", in_progress_at__isnull=False)[:20]:
        statuses = list(batch.status_changes.values_list("new_status", flat=True))
        assert len(statuses) == len(set(statuses))
    # Snapshots only when something changed: never two in a row with the same counts.
    for batch in Batch.objects.all()[:50]:
        counts = list(batch.snapshots.values_list("completed", "failed", "total"))
        assert all(a != b for a, b in itertools.pairwise(counts))


def test_a_stale_observation_never_overwrites_a_newer_one(simulator_connection, simulator):
    client = BatchAPIClient(connections.client_config_for(simulator_connection))
    running = next(b for b in client.iter_batches(limit=100) if b.status == "in_progress")
    simulator.advance(seconds=7200)
    moved = client.retrieve_batch(running.id)
    assert moved.raw != running.raw
    now = timezone.now()
    # The newer observation lands first; a slow worker then brings the older one.
    sync.upsert_batches(simulator_connection, [moved], observed_at=now)
    result = sync.upsert_batches(simulator_connection, [running], observed_at=now - timedelta(seconds=5))
    assert result.updated == 0
    assert Batch.objects.get(batch_id=running.id).raw == moved.raw
    client.close()


def test_the_same_page_written_twice_makes_no_duplicate_rows(simulator_connection, simulator):
    client = BatchAPIClient(connections.client_config_for(simulator_connection))
    page = next(client.list_batch_pages(limit=100))
    now = timezone.now()
    sync.upsert_batches(simulator_connection, page.data, observed_at=now)
    sync.upsert_batches(simulator_connection, page.data, observed_at=now + timedelta(seconds=1))
    assert Batch.objects.count() == len(page.data)
    assert BatchStatusChange.objects.count() == len(page.data)
    assert ProgressSnapshot.objects.filter(batch__batch_id=page.data[0].id).count() <= 1
    client.close()


def test_a_fast_refresh_makes_few_api_calls(simulator_connection, simulator):
    sync.full_sync(simulator_connection)
    active = list(
        Batch.objects.filter(connection=simulator_connection, is_terminal=False).order_by("-created_at")
    )
    ordered = list(Batch.objects.filter(connection=simulator_connection).order_by("-created_at", "-batch_id"))
    k = len(active)
    oldest_position = ordered.index(active[-1]) + 1
    result = sync.refresh_active(simulator_connection)
    assert k > 0
    assert result.api_calls <= min(k, math.ceil(oldest_position / 100)) + 1


def test_a_fast_refresh_retrieves_a_lone_old_active_batch_instead_of_paging_to_it(
    simulator_connection, simulator
):
    sync.full_sync(simulator_connection)
    oldest = Batch.objects.filter(connection=simulator_connection).order_by("created_at").first()
    Batch.objects.exclude(pk=oldest.pk).update(is_terminal=True)
    Batch.objects.filter(pk=oldest.pk).update(is_terminal=False)
    # Paging down to it would take ceil(250 / 100) = 3 calls; one list page plus one retrieve is 2.
    result = sync.refresh_active(simulator_connection)
    assert result.api_calls == 2


def test_batches_that_age_out_of_the_list_stay_marked_unlisted(simulator_connection, simulator):
    sync.full_sync(simulator_connection)
    now = timezone.now()
    Batch.objects.create(
        connection=simulator_connection,
        batch_id="batch_aged_out",
        status="completed",
        is_terminal=True,
        created_at=now - timedelta(days=60),
        observed_at=now,
        first_seen_at=now,
        last_synced_at=now,
        last_changed_at=now,
        raw={"id": "batch_aged_out"},
    )
    sync.full_sync(simulator_connection, complete=True)
    aged = Batch.objects.get(batch_id="batch_aged_out")
    assert aged.listed is False
    assert Batch.objects.filter(listed=False).count() == 1


def test_a_rate_limited_connection_waits_out_retry_after(simulator_connection, simulator):
    simulator.set_faults(rate_429=1.0, retry_after_seconds=42)
    config = connections.client_config_for(simulator_connection)
    with pytest.raises(RateLimitError) as caught:
        sync.full_sync(
            simulator_connection, client=BatchAPIClient(ClientConfig(**{**config.__dict__, "max_retries": 0}))
        )
    next_attempt = schedule.record_failure(simulator_connection, caught.value)
    delay = (next_attempt - timezone.now()).total_seconds()
    assert 35 < delay <= 42
    simulator_connection.refresh_from_db()
    assert not schedule.may_call_api(simulator_connection)
    assert "429" in simulator_connection.last_error or "rate" in simulator_connection.last_error.lower()


def test_due_work_is_claimed_once_however_often_beat_ticks(simulator_connection):
    now = timezone.now()
    first = schedule.claim_due_work(simulator_connection, now)
    simulator_connection.refresh_from_db()
    second = schedule.claim_due_work(simulator_connection, now + timedelta(seconds=1))
    assert first == ["full_sync"]  # in the place of the refresh due at the same time
    assert second == []
    simulator_connection.refresh_from_db()
    # Nobody watches: the claim holds the refresh for the idle interval, after which it is claimed
    # again (the refresh itself records a later due time when it ends, batches.tasks).
    assert schedule.claim_due_work(simulator_connection, now + timedelta(seconds=16)) == []
    simulator_connection.refresh_from_db()
    later = now + timedelta(seconds=settings.SYNC_IDLE_REFRESH_SECONDS)
    assert schedule.claim_due_work(simulator_connection, later) == ["refresh"]


def test_the_environment_connection_exists_without_set_up():
    assert Connection.objects.filter(name="default", from_environment=True).exists()


def test_sync_batches_command_prints_what_it_did(simulator_connection, simulator, capsys):
    from django.core.management import call_command

    call_command("sync_batches", "--connection", simulator_connection.name)
    out = capsys.readouterr().out
    assert f"{simulator.count()} created, 0 updated, 0 unchanged" in out
    assert "API calls" in out


def test_sync_batches_command_names_an_unknown_connection():
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No connection named 'nope'"):
        call_command("sync_batches", "--connection", "nope")


def test_the_fast_insert_writes_every_column_the_orm_would(simulator_connection, simulator):
    """New rows skip the ORM's bulk_create; they must still fill every column, as the ORM reads them."""
    client = BatchAPIClient(connections.client_config_for(simulator_connection))
    api_batch = next(b for b in client.iter_batches(limit=100) if b.status == "in_progress")
    client.close()
    now = timezone.now()
    for insert in (writer.NEW_BATCH, writer.STATUS_CHANGE, writer.SNAPSHOT):
        row = writer.values(insert.columns, writer.Observation(api_batch, now, simulator_connection.pk, pk=1))
        assert set(row) == {field.name for field in insert.model._meta.concrete_fields} - {"id"}
    sync.upsert_batches(simulator_connection, [api_batch], observed_at=now)
    stored = Batch.objects.get(batch_id=api_batch.id)
    assert stored.raw == api_batch.raw
    assert stored.created_at == api_batch.created_at and stored.in_progress_at == api_batch.in_progress_at
    assert stored.observed_at == now and stored.metadata == api_batch.metadata
    assert stored.total_requests == api_batch.request_counts.total
    assert stored.errors == [] and stored.problems == []
    assert stored.status_changes.get().observed_at == now
    assert stored.snapshots.get().total == api_batch.request_counts.total


def test_malformed_list_items_are_counted_and_logged_not_fatal(simulator_connection, simulator, caplog):
    from batches.api.objects import ApiBatchPage

    good = simulator.batches()[0]  # a batch object exactly as the simulator serves it
    page = ApiBatchPage.from_json({"object": "list", "data": [good, {"object": "batch"}], "has_more": False})
    total = sync.SyncResult()
    with caplog.at_level("WARNING", logger="batches.sync"):
        sync._note_skipped(simulator_connection, page, total)
    assert total.skipped == 1
    assert [batch.id for batch in page.data] == [good["id"]]
    assert "skipped 1 malformed list item(s): item 2 of the page" in caplog.text
