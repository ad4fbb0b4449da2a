"""Sessions are read from the database with one statement (accounts/sessions.py): the same rules as
Django's own database store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.sessions import SessionStore
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db


def test_it_loads_a_saved_session():
    store = SessionStore()
    store["answer"] = 42
    store.save()
    assert SessionStore(store.session_key)["answer"] == 42


def test_it_ignores_an_expired_session():
    store = SessionStore()
    store["answer"] = 42
    store.save()
    Session.objects.filter(session_key=store.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    fresh = SessionStore(store.session_key)
    assert fresh.load() == {}
    assert fresh.session_key is None


def test_it_ignores_an_unknown_or_malformed_key():
    assert SessionStore("x" * 32).load() == {}
    assert SessionStore("'; DROP TABLE django_session; --").load() == {}
    assert Session.objects.model._meta.db_table == "django_session"


def test_a_deleted_session_signs_the_user_out_at_once(client):
    client.force_login(make_user("viewer"))
    assert client.get("/").status_code == 200
    Session.objects.all().delete()  # what a sign-out in another web process does
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_remembered_decoding_gives_each_request_its_own_copy():
    store = SessionStore()
    store["answer"] = 42
    store.save()
    first = SessionStore(store.session_key)
    first["answer"] = 43  # changed in one request, not saved
    assert SessionStore(store.session_key)["answer"] == 42


def test_a_session_holding_a_list_is_decoded_afresh_so_a_change_to_it_stays_in_its_request():
    store = SessionStore()
    store["seen"] = [1]
    store.save()
    SessionStore(store.session_key)["seen"].append(2)
    assert SessionStore(store.session_key)["seen"] == [1]


def test_a_session_signed_with_a_key_no_longer_accepted_stops_decoding_at_once(settings):
    store = SessionStore()
    store["answer"] = 42
    store.save()
    assert SessionStore(store.session_key)["answer"] == 42
    settings.SECRET_KEY = "another-" + "k" * 50
    assert SessionStore(store.session_key).get("answer") is None
