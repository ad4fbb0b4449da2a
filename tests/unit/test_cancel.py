"""Cancelling through the pages, against the simulator."""

import pytest

from batches import sync
from batches.models import Batch, CancelRequest, Connection
from tests.conftest import free_port
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = make_user("olga", "operator")
    client.force_login(user)
    return user


@pytest.fixture
def running_batch(simulator_connection, simulator) -> Batch:
    sync.full_sync(simulator_connection)
    return Batch.objects.filter(connection=simulator_connection, status="in_progress").first()


def test_it_cancels_a_running_batch_from_its_row(client, operator, running_batch, simulator):
    response = client.post(f"/batches/{running_batch.pk}/cancel/", {"from": "row"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith(f'<tr id="batch-{running_batch.pk}"')
    assert "cancelling" in body
    assert f'data-live="{running_batch.pk}"' in body  # in the page's poll until cancelled
    running_batch.refresh_from_db()
    assert running_batch.status == "cancelling"
    on_api = next(b for b in simulator.batches() if b["id"] == running_batch.batch_id)
    assert on_api["status"] == "cancelling"
    record = CancelRequest.objects.get(batch=running_batch)
    assert record.user == operator and record.succeeded


def test_a_batch_deleted_during_its_cancel_answers_404_not_a_server_error(
    client, operator, running_batch, monkeypatch
):
    from batches import services

    cancel = services.cancel_batch

    def cancel_then_delete(batch, **kwargs):
        outcome = cancel(batch, **kwargs)
        Batch.objects.filter(pk=batch.pk).delete()  # its connection deleted by an admin meanwhile
        return outcome

    monkeypatch.setattr(services, "cancel_batch", cancel_then_delete)
    response = client.post(f"/batches/{running_batch.pk}/cancel/", {"from": "row"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 404


def test_the_detail_fragment_is_swapped_after_a_cancel(client, operator, running_batch):
    response = client.post(f"/batches/{running_batch.pk}/cancel/", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="batch-live"')
    assert "Cancellation requested" in body


def test_a_batch_that_already_finished_says_so_and_shows_its_true_state(
    client, operator, simulator_connection, simulator
):
    sync.full_sync(simulator_connection)
    done = Batch.objects.filter(connection=simulator_connection, status="completed").first()
    # The dashboard's copy is behind: it still believes the batch runs.
    Batch.objects.filter(pk=done.pk).update(status="in_progress", is_terminal=False, raw={})
    response = client.post(f"/batches/{done.pk}/cancel/", {"from": "row"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert "The API refused to cancel" in body
    done.refresh_from_db()
    assert done.status == "completed"
    assert not CancelRequest.objects.get(batch=done).succeeded


def test_an_unreachable_api_is_explained_and_nothing_is_lost(client, operator, monkeypatch):
    monkeypatch.setenv("DEAD_API_KEY", "sk-dead")
    dead = Connection.objects.create(
        name="dead", base_url=f"http://127.0.0.1:{free_port()}/v1", api_key_env="DEAD_API_KEY"
    )
    from tests.support.factories import make_batch

    batch = make_batch(connection=dead, status="in_progress")
    response = client.post(f"/batches/{batch.pk}/cancel/", {"from": "row"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "could not be reached" in response.content.decode()
    batch.refresh_from_db()
    assert batch.status == "in_progress"


def test_without_javascript_cancel_asks_first_then_redirects_with_a_message(client, operator, running_batch):
    page = client.get(f"/batches/{running_batch.pk}/cancel/")
    assert page.status_code == 200
    assert "Partial results are kept" in page.content.decode()
    response = client.post(f"/batches/{running_batch.pk}/cancel/", {"next": "/?status=in_progress"})
    assert response.status_code == 302 and response["Location"] == "/?status=in_progress"
    followed = client.get(response["Location"])
    assert "Cancellation requested" in followed.content.decode()


def test_cancel_never_redirects_off_site(client, operator, running_batch):
    response = client.post(f"/batches/{running_batch.pk}/cancel/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/batches/{running_batch.pk}/"


def test_a_finished_batch_has_no_cancel_button(client, operator, simulator_connection, simulator):
    sync.full_sync(simulator_connection)
    done = Batch.objects.filter(connection=simulator_connection, status="completed").first()
    assert "Cancel" not in client.get(f"/batches/{done.pk}/row/").content.decode()
    running = Batch.objects.filter(connection=simulator_connection, status="in_progress").first()
    assert ">Cancel<" in client.get(f"/batches/{running.pk}/row/").content.decode()


def test_cancelling_an_unknown_batch_is_a_404(client, operator):
    assert client.post("/batches/424242/cancel/").status_code == 404


def test_cancel_needs_a_signed_in_user(client, running_batch):
    response = client.post(f"/batches/{running_batch.pk}/cancel/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not CancelRequest.objects.exists()
