"""Bulk cancel: the service against the simulator, the confirmation and progress pages, and access."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from accounts.models import AuditEvent
from batches import selectors_bulk, services_bulk, sync
from batches.models import Batch, BulkCancel, BulkCancelItem, CancelRequest
from batches.statuses import CANCELLABLE_STATUSES
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db
State = BulkCancelItem.State
KEY = "k" * 32


@pytest.fixture
def synced(simulator_connection, simulator):
    sync.full_sync(simulator_connection)
    return simulator_connection


@pytest.fixture
def operator(client):
    user = make_user("olga", "operator")
    client.force_login(user)
    return user


@pytest.fixture
def queue(redis_settings):
    """The real broker; the test reads what was queued, and nothing is left for later tests."""
    from dashboard.celery import app

    app.control.purge()
    yield redis.Redis.from_url(redis_settings)
    app.control.purge()


def running(connection, n: int) -> list[Batch]:
    return list(Batch.objects.filter(connection=connection, status="in_progress").order_by("pk")[:n])


def start(batches: list[Batch], user, key: str = KEY) -> services_bulk.StartOutcome:
    queryset = selectors_bulk.selected_batches([b.pk for b in batches], None)
    return services_bulk.start_bulk_cancel(key=key, batches=queryset, selection="test", user=user)


def test_it_cancels_each_selected_batch_once_and_audits_each_and_the_request(
    synced, simulator, operator, django_capture_on_commit_callbacks
):
    chosen = running(synced, 3)
    outcome = start(chosen, operator)
    assert outcome.created and outcome.bulk is not None
    result = services_bulk.run_bulk_cancel(outcome.bulk.pk)
    assert result.ran and result.retry_in is None
    states = set(BulkCancelItem.objects.values_list("state", flat=True))
    assert states == {State.DONE}
    accepted = simulator.cancels_accepted()
    assert accepted == {b.batch_id: 1 for b in chosen}
    assert {b.status for b in Batch.objects.filter(pk__in=[b.pk for b in chosen])} == {"cancelling"}
    outcome.bulk.refresh_from_db()
    assert outcome.bulk.finished_at is not None
    bulk_events = AuditEvent.objects.filter(action=AuditEvent.Action.BULK_CANCEL)
    assert bulk_events.count() == 1 and bulk_events.get().actor == operator
    per_batch = AuditEvent.objects.filter(action=AuditEvent.Action.CANCEL)
    assert sorted(per_batch.values_list("target", flat=True)) == sorted(
        f"{synced.name}/{b.batch_id}" for b in chosen
    )
    assert all(per_batch.values_list("succeeded", flat=True))
    assert CancelRequest.objects.filter(user=operator, succeeded=True).count() == 3
    # A second run finds nothing to do and sends nothing.
    assert not services_bulk.run_bulk_cancel(outcome.bulk.pk).ran
    assert simulator.cancels_accepted() == accepted


def test_a_429_waits_for_the_retry_after_and_is_not_counted_as_failed(synced, simulator, operator, settings):
    settings.OPENAI_MAX_RETRIES = 0  # the client would otherwise wait out the 429 itself
    chosen = running(synced, 3)
    outcome = start(chosen, operator)
    simulator.set_faults(rate_429=1.0, retry_after_seconds=30)
    result = services_bulk.run_bulk_cancel(outcome.bulk.pk)
    items = list(BulkCancelItem.objects.order_by("pk"))
    assert {item.state for item in items} == {State.PENDING}
    assert all(item.not_before and item.not_before > timezone.now() + timedelta(seconds=25) for item in items)
    assert [item.attempts for item in items] == [0, 0, 0]  # waiting for the API is no failed attempt
    assert 25 < result.retry_in <= 30
    # The connection waits as a whole: one request met the limit, the others were not sent.
    sent = [r for r in simulator.requests("/v1/batches/") if r["path"].endswith("/cancel")]
    assert [(r["status"], r["count"]) for r in sent] == [(429, 1)]
    progress = selectors_bulk.bulk_progress(outcome.bulk)
    assert progress.failed == 0 and progress.waiting == 3 and not progress.finished
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CANCEL).exists()

    simulator.set_faults(rate_429=0.0)
    BulkCancelItem.objects.update(not_before=timezone.now() - timedelta(seconds=1))  # the wait is over
    result = services_bulk.run_bulk_cancel(outcome.bulk.pk)
    assert result.retry_in is None
    assert set(BulkCancelItem.objects.values_list("state", flat=True)) == {State.DONE}
    assert simulator.cancels_accepted() == {b.batch_id: 1 for b in chosen}


def test_a_batch_that_finished_meanwhile_counts_as_already_finished_not_as_an_error(
    synced, simulator, operator
):
    behind = Batch.objects.filter(connection=synced, status="completed").first()
    # The dashboard's copy is behind: it still believes the batch runs, and so it is offered.
    Batch.objects.filter(pk=behind.pk).update(status="in_progress", is_terminal=False, raw={})
    other = Batch.objects.filter(connection=synced, status="in_progress").exclude(pk=behind.pk).first()
    chosen = [other, behind]
    outcome = start(chosen, operator)
    # And one the sync saw finish after it was selected: no call is made for it.
    Batch.objects.filter(pk=chosen[0].pk).update(status="cancelled", is_terminal=True)
    services_bulk.run_bulk_cancel(outcome.bulk.pk)
    states = dict(BulkCancelItem.objects.values_list("batch_id", "state"))
    assert states == {chosen[0].pk: State.ALREADY_FINISHED, behind.pk: State.ALREADY_FINISHED}
    behind.refresh_from_db()
    assert behind.status == "completed"  # the true state, read back after the API's refusal
    assert simulator.cancels_accepted() == {}
    progress = selectors_bulk.bulk_progress(outcome.bulk)
    assert (progress.already_finished, progress.failed, progress.refused) == (2, 0, 0)
    assert progress.finished


def test_a_batch_the_api_refuses_is_refused_with_the_apis_words(synced, simulator, operator):
    finalizing = Batch.objects.filter(connection=synced, status="finalizing").first()
    Batch.objects.filter(pk=finalizing.pk).update(status="in_progress")
    outcome = start([finalizing], operator)
    services_bulk.run_bulk_cancel(outcome.bulk.pk)
    item = BulkCancelItem.objects.get()
    assert item.state == State.REFUSED
    assert "The API refused to cancel" in item.message and "finalizing" in item.message
    assert AuditEvent.objects.get(action=AuditEvent.Action.CANCEL).succeeded is False


def test_the_same_key_twice_makes_one_request_and_one_task(
    client, synced, operator, queue, django_capture_on_commit_callbacks
):
    chosen = running(synced, 3)
    form = {"key": KEY, "scope": "selected", "batch": [str(b.pk) for b in chosen]}
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post("/batches/bulk-cancel/", form)
    with django_capture_on_commit_callbacks(execute=True):
        second = client.post("/batches/bulk-cancel/", form)  # a double click, or a replayed POST
    bulk = BulkCancel.objects.get()
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == f"/batches/bulk-cancel/{bulk.pk}/"
    assert bulk.items.count() == 3
    assert queue.llen("celery") == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.BULK_CANCEL).count() == 1


def test_a_second_tab_does_not_cancel_a_batch_twice(synced, simulator, operator):
    chosen = running(synced, 3)
    first = start(chosen[:2], operator, key="a" * 32)
    second = start(chosen, operator, key="b" * 32)  # overlaps the first: only the third is its own
    assert second.bulk is not None and list(second.bulk.items.values_list("batch_id", flat=True)) == [
        chosen[2].pk
    ]
    third = start(chosen, operator, key="c" * 32)
    assert third.bulk is None and "already being cancelled" in third.message
    for outcome in (second, first):
        services_bulk.run_bulk_cancel(outcome.bulk.pk)
    assert simulator.cancels_accepted() == {b.batch_id: 1 for b in chosen}


def test_a_run_holding_the_lease_keeps_a_second_run_out(synced, simulator, operator):
    outcome = start(running(synced, 2), operator)
    BulkCancel.objects.filter(pk=outcome.bulk.pk).update(running_until=timezone.now() + timedelta(minutes=1))
    assert not services_bulk.run_bulk_cancel(outcome.bulk.pk).ran
    assert simulator.cancels_accepted() == {}


def test_every_batch_matching_the_filters_is_selected(client, synced, operator):
    cancellable = Batch.objects.filter(connection=synced, status__in=CANCELLABLE_STATUSES).count()
    response = client.get("/batches/bulk-cancel/", {"scope": "filtered", "filters": "status=in_progress"})
    in_progress = Batch.objects.filter(status="in_progress").count()
    body = response.content.decode()
    assert response.status_code == 200
    assert f"Cancel {in_progress} batches?" in body and "status=in_progress" in body
    response = client.get("/batches/bulk-cancel/", {"scope": "filtered", "filters": ""})
    assert f"Cancel {cancellable} batches?" in response.content.decode()


def test_the_confirmation_names_the_count_connections_and_what_happens(client, synced, operator):
    chosen = running(synced, 3)
    response = client.get("/batches/bulk-cancel/", {"batch": [str(b.pk) for b in chosen] + ["x", "-1"]})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Cancel 3 batches?" in body and synced.name in body
    assert "cancelling" in body and "cancelled" in body and "Partial results are kept" in body
    assert 'name="key"' in body and ">Cancel 3 batches</button>" in body


def test_the_list_sends_nothing_selected_to_a_clear_page_not_an_error(client, synced, operator):
    response = client.get("/batches/bulk-cancel/", {"filters": "status=in_progress"})
    assert response.status_code == 200
    assert "Nothing to cancel" in response.content.decode()


def test_without_the_pages_key_a_post_cancels_nothing_and_asks_again(client, synced, operator):
    chosen = running(synced, 1)
    response = client.post("/batches/bulk-cancel/", {"batch": [str(chosen[0].pk)]})
    assert response.status_code == 400
    assert "nothing was cancelled" in response.content.decode()
    assert not BulkCancel.objects.exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_viewer_may_not_start_a_bulk_cancel(client, synced, method):
    client.force_login(make_user("vera", "viewer"))
    chosen = running(synced, 1)
    response = getattr(client, method)("/batches/bulk-cancel/", {"key": KEY, "batch": [str(chosen[0].pk)]})
    assert response.status_code == 403
    assert not BulkCancel.objects.exists()


def test_the_service_refuses_a_viewer_too(synced):
    with pytest.raises(PermissionDenied):
        start(running(synced, 1), make_user("vera", "viewer"))
    assert not BulkCancel.objects.exists()


def test_an_admin_may_start_one(client, synced, django_capture_on_commit_callbacks, queue):
    client.force_login(make_user("ada", "admin"))
    chosen = running(synced, 1)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/batches/bulk-cancel/", {"key": KEY, "batch": [str(chosen[0].pk)]})
    assert response.status_code == 302 and BulkCancel.objects.count() == 1


def test_the_progress_fragment_polls_until_every_batch_is_answered(client, synced, operator):
    outcome = start(running(synced, 2), operator)
    url = f"/batches/bulk-cancel/{outcome.bulk.pk}/"
    fragment = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "bulk-progress"}
    before = client.get(url, **fragment).content.decode()
    assert before.lstrip().startswith('<div id="bulk-progress"') and 'hx-trigger="every 2s"' in before
    services_bulk.run_bulk_cancel(outcome.bulk.pk)
    after = client.get(url, **fragment).content.decode()
    assert "hx-trigger" not in after and 'data-finished="1"' in after
    assert '<dd data-count="done">2</dd>' in after
    page = client.get(url)
    assert page.status_code == 200 and "<html" in page.content.decode()
    assert client.get("/batches/bulk-cancel/999999/").status_code == 404


def test_the_list_offers_a_checkbox_per_cancellable_row_to_operators_only(client, synced):
    client.force_login(make_user("olga", "operator"))
    body = client.get("/?status=in_progress").content.decode()
    in_progress = Batch.objects.filter(status="in_progress").count()
    assert body.count('form="bulk-cancel"') == min(in_progress, 50)
    assert "Select all on this page" in body
    assert f"All {in_progress + 0} batches matching these filters" in body
    client.force_login(make_user("vera", "viewer"))
    body = client.get("/?status=in_progress").content.decode()
    assert 'form="bulk-cancel"' not in body and 'id="bulk-cancel"' not in body


def test_a_lost_task_is_enqueued_again_by_the_dispatcher(synced, operator):
    outcome = start(running(synced, 1), operator)
    assert services_bulk.unfinished_bulk_cancels() == []  # within the grace: its own task may yet start
    later = timezone.now() + services_bulk.SWEEP_GRACE + timedelta(seconds=1)
    assert services_bulk.unfinished_bulk_cancels(later) == [outcome.bulk.pk]
    services_bulk.run_bulk_cancel(outcome.bulk.pk)
    assert services_bulk.unfinished_bulk_cancels(later) == []


def test_a_run_that_died_after_cancelling_is_not_cancelled_again_by_the_next(synced, simulator, operator):
    chosen = running(synced, 2)
    outcome = start(chosen, operator)
    # A worker claimed both, had the first cancelled by the API, then died before writing anything down.
    long_ago = timezone.now() - services_bulk.STALE_CLAIM - timedelta(seconds=1)
    BulkCancelItem.objects.update(state=State.SENDING, claim="dead", claimed_at=long_ago, attempts=1)
    from batches.connections import client_for

    with client_for(synced) as client:
        client.cancel_batch(chosen[0].batch_id)
    services_bulk.run_bulk_cancel(outcome.bulk.pk)
    assert set(BulkCancelItem.objects.values_list("state", flat=True)) == {State.DONE}
    assert simulator.cancels_accepted() == {b.batch_id: 1 for b in chosen}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CANCEL).count() == 2


def test_a_post_replayed_after_the_work_is_done_leads_to_the_same_request(
    client, synced, simulator, operator, queue, django_capture_on_commit_callbacks
):
    chosen = running(synced, 2)
    form = {"key": KEY, "batch": [str(b.pk) for b in chosen]}
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post("/batches/bulk-cancel/", form)
    services_bulk.run_bulk_cancel(BulkCancel.objects.get().pk)  # the batches are cancelling now
    with django_capture_on_commit_callbacks(execute=True):
        replayed = client.post("/batches/bulk-cancel/", form)
    assert replayed.status_code == 302 and replayed["Location"] == first["Location"]
    assert BulkCancel.objects.count() == 1 and queue.llen("celery") == 1
    assert simulator.cancels_accepted() == {b.batch_id: 1 for b in chosen}


def test_a_request_waiting_for_a_retry_after_is_picked_up_by_the_dispatcher_once_due(
    synced, simulator, operator, settings
):
    settings.OPENAI_MAX_RETRIES = 0
    outcome = start(running(synced, 2), operator)
    simulator.set_faults(rate_429=1.0, retry_after_seconds=30)
    services_bulk.run_bulk_cancel(outcome.bulk.pk)
    # Waiting: no run holds it and nothing is due yet, so the dispatcher leaves it alone.
    assert services_bulk.unfinished_bulk_cancels() == []
    due = timezone.now() + timedelta(seconds=31)
    assert services_bulk.unfinished_bulk_cancels(due) == [outcome.bulk.pk]
