"""Row polls reuse their check of who is polling for a few seconds (accounts/polls.py)."""

import time
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User

from accounts import polls
from accounts.roles import OPERATOR, VIEWER, set_role
from tests.support.factories import make_batch, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = make_user("op", OPERATOR)
    client.force_login(user)
    return user


@pytest.fixture
def window_passes(settings, monkeypatch):
    """Moves the clock of accounts/polls.py (only) past POLL_AUTH_SECONDS."""

    def move() -> None:
        clock = time.time() + settings.POLL_AUTH_SECONDS + 0.1
        monkeypatch.setattr(polls, "time", SimpleNamespace(time=lambda: clock))

    return move


def poll(client, batch):
    return client.get(f"/batches/{batch.pk}/row/", HTTP_HX_REQUEST="true")


def test_a_poll_does_not_load_the_user_again_within_the_window(client, operator, django_assert_num_queries):
    batch = make_batch(status="in_progress")
    assert poll(client, batch).status_code == 200
    with django_assert_num_queries(2):  # the session and the row; the user is remembered
        response = poll(client, batch)
    assert ">Cancel<" in response.content.decode()


def test_a_deactivated_user_stops_polling_once_the_window_passes(client, operator, window_passes):
    batch = make_batch(status="in_progress")
    assert poll(client, batch).status_code == 200
    User.objects.filter(pk=operator.pk).update(is_active=False)
    assert poll(client, batch).status_code == 200  # within POLL_AUTH_SECONDS
    window_passes()
    response = poll(client, batch)
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/login/")


def test_signing_out_stops_polling_at_once(client, operator):
    batch = make_batch(status="in_progress")
    assert poll(client, batch).status_code == 200
    client.post("/logout/")
    response = poll(client, batch)
    assert "HX-Redirect" in response or response.status_code == 302


def test_a_demoted_operator_loses_the_cancel_button_after_the_window_and_cancel_at_once(
    client, operator, window_passes
):
    batch = make_batch(status="in_progress")
    assert ">Cancel<" in poll(client, batch).content.decode()
    set_role(operator, VIEWER)
    # Writes check in full every time: the cancel is refused straight away.
    assert client.post(f"/batches/{batch.pk}/cancel/").status_code == 403
    window_passes()
    assert ">Cancel<" not in poll(client, batch).content.decode()


def test_with_a_zero_window_every_poll_checks_in_full(client, operator, settings):
    settings.POLL_AUTH_SECONDS = 0
    batch = make_batch(status="in_progress")
    assert poll(client, batch).status_code == 200
    User.objects.filter(pk=operator.pk).update(is_active=False)
    assert "HX-Redirect" in poll(client, batch)


def test_a_password_changed_elsewhere_ends_polling_once_the_window_passes(client, operator, window_passes):
    batch = make_batch(status="in_progress")
    assert poll(client, batch).status_code == 200
    operator.set_password("a-new-password-2")
    operator.save()
    window_passes()
    assert "HX-Redirect" in poll(client, batch)
