"""The client's address behind a trusted proxy (dashboard/client_ip.py): sign-in rate limits and the
audit log key on the person, not on the proxy every request comes through."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from accounts.models import AuditEvent
from accounts.roles import ADMIN
from dashboard.client_ip import client_ip
from tests.support.factories import make_user

PROXY = "10.0.0.2"


def request_from(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_it_ignores_x_forwarded_for_without_trusted_proxies(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(request_from("198.51.100.7", "203.0.113.9")) == "198.51.100.7"


def test_it_ignores_x_forwarded_for_from_an_untrusted_peer(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert client_ip(request_from("198.51.100.7", "203.0.113.9")) == "198.51.100.7"


def test_it_takes_the_client_from_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert client_ip(request_from(PROXY, "203.0.113.9")) == "203.0.113.9"


def test_it_never_believes_what_the_client_wrote_left_of_the_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    # The client sent "X-Forwarded-For: 1.2.3.4"; a proxy that appends added the real address.
    assert client_ip(request_from(PROXY, "1.2.3.4, 203.0.113.9")) == "203.0.113.9"


def test_it_skips_a_chain_of_trusted_proxies(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24", "::1"]
    assert client_ip(request_from("::1", "1.2.3.4, 203.0.113.9, 10.0.0.7")) == "203.0.113.9"


@pytest.mark.parametrize("garbage", ["", "not-an-address", "999.1.1.1", "\x00", "a" * 10_000])
def test_it_falls_back_to_the_proxy_on_an_unreadable_header(settings, garbage):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert client_ip(request_from(PROXY, garbage)) == PROXY


def test_it_reads_ipv4_mapped_and_ported_addresses(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert client_ip(request_from(PROXY, "[2001:db8::5]:4711")) == "2001:db8::5"
    assert client_ip(request_from(PROXY, "203.0.113.9:4711")) == "203.0.113.9"
    assert client_ip(request_from("::ffff:10.0.0.2", "203.0.113.9")) == "203.0.113.9"


@pytest.mark.django_db
def test_failures_from_one_address_do_not_lock_out_the_same_user_from_another(client, settings):
    settings.TRUSTED_PROXIES = [PROXY]
    make_user("admin", ADMIN, password="right-password-123")
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        client.post(
            "/login/",
            {"username": "admin", "password": "wrong"},
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR="203.0.113.66",
        )
    locked = client.post(
        "/login/",
        {"username": "admin", "password": "right-password-123"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="203.0.113.66",
    )
    assert locked.status_code == 429
    response = client.post(
        "/login/",
        {"username": "admin", "password": "right-password-123"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="198.51.100.20",
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.django_db
def test_the_audit_log_records_the_clients_address_not_the_proxys(client, settings):
    settings.TRUSTED_PROXIES = [PROXY]
    make_user("admin", ADMIN, password="right-password-123")
    client.post(
        "/login/",
        {"username": "admin", "password": "right-password-123"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="198.51.100.20",
    )
    event = AuditEvent.objects.order_by("-at").first()
    assert event is not None
    assert event.ip_address == "198.51.100.20"
