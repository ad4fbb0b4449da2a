"""Row polls reuse their check of who is polling for a few seconds (accounts/polls.py)."""

import re
import time
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User

from accounts import polls
from accounts.roles import OPERATOR, VIEWER, set_role
from dashboard.shared_redis import client as redis_client
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


def test_a_changed_row_is_rendered_once_for_everyone_with_each_askers_own_form_token(
    client, operator, monkeypatch
):
    """The row poll keeps its render per version in Redis (live_rows.row_poll_fragment), as the page
    poll does; an operator's copy still carries that operator's own CSRF token and return address,
    and a viewer's (another version: the role is part of it) has no cancel form at all."""
    from django.test import Client

    from batches import live_rows

    batch = make_batch(status="in_progress")
    first = client.get(f"/batches/{batch.pk}/row/?v=old", HTTP_HX_REQUEST="true").content.decode()
    other = Client()
    other.force_login(make_user("op2", OPERATOR))
    rendered = []
    real = live_rows.get_template
    monkeypatch.setattr(live_rows, "get_template", lambda name: rendered.append(name) or real(name))
    second = other.get(f"/batches/{batch.pk}/row/?v=older", HTTP_HX_REQUEST="true").content.decode()
    assert rendered == []  # the first operator's render, from Redis
    assert redis_client().keys(f"{live_rows.ROW_POLL_PREFIX}{batch.pk}:*")
    tokens = [
        re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1) for body in (first, second)
    ]
    assert tokens[0] != tokens[1] and live_rows.CSRF_SLOT not in first + second
    assert f'name="next" value="/batches/{batch.pk}/row/?v=older"' in second
    viewer = Client()
    viewer.force_login(make_user("watcher", VIEWER))
    assert (
        ">Cancel<"
        not in viewer.get(f"/batches/{batch.pk}/row/?v=old", HTTP_HX_REQUEST="true").content.decode()
    )
