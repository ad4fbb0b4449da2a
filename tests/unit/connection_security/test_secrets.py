"""Connections may not hand the server's secrets to whoever administers them (issue 13, hole 3): key
variables from an allowlist, a new host needs the key again, "Test" quotes only API error bodies.

Nothing here leaves loopback: the `no_traffic_off_loopback` guard turns any connect to another address
into a refused connection (and records it), and `fake_dns` answers for invented names only.
"""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from accounts.models import AuditEvent
from batches import connections
from batches.models import Connection
from tests.unit.connection_security.support import connection_form, run_test

pytestmark = pytest.mark.django_db

MARKER = "MARKER-internal-page-7f3a"


# --- hole 3: keys from the environment -----------------------------------------------------------


@pytest.mark.parametrize("name", ["DJANGO_SECRET_KEY", "DATABASE_URL", "DASHBOARD_ENCRYPTION_KEY"])
def test_a_key_may_not_be_read_from_the_dashboards_own_variables(admin_client, name):
    response = admin_client.post("/connections/new/", connection_form(api_key_env=name))
    assert response.status_code == 200
    assert "one of the dashboard&#x27;s own settings" in response.content.decode()
    assert not Connection.objects.filter(name="team-b").exists()


@pytest.mark.parametrize("name", ["DJANGO_SECRET_KEY", "OPENAI_WEBHOOK_SECRET", "METRICS_TOKEN", "REDIS_URL"])
def test_the_deny_list_wins_over_a_pattern_that_admits_every_name(admin_client, settings, name):
    settings.DASHBOARD_API_KEY_ENV_PATTERN = ".*"
    response = admin_client.post("/connections/new/", connection_form(api_key_env=name))
    assert response.status_code == 200
    assert not Connection.objects.filter(name="team-b").exists()


def test_a_variable_outside_the_pattern_is_refused(admin_client):
    response = admin_client.post("/connections/new/", connection_form(api_key_env="AWS_SECRET_ACCESS_KEY"))
    assert response.status_code == 200
    assert "DASHBOARD_API_KEY_ENV_PATTERN" in response.content.decode()
    assert not Connection.objects.filter(name="team-b").exists()


@pytest.mark.parametrize("name", ["OPENAI_API_KEY_TEAM2", "ACME_API_KEY"])
def test_api_key_variables_are_accepted(admin_client, name):
    response = admin_client.post("/connections/new/", connection_form(api_key_env=name))
    assert response.status_code == 302
    assert Connection.objects.get(name="team-b").api_key_env == name


@pytest.mark.parametrize("name", ["DJANGO_SECRET_KEY", "DATABASE_URL", "DASHBOARD_ENCRYPTION_KEY"])
def test_a_stored_variable_that_no_longer_passes_is_refused_at_use(
    admin_client, start_page_server, monkeypatch, name
):
    # Saved before the rule existed: the server's own secret must still never leave.
    monkeypatch.setenv(name, "server-own-secret-value-1234")
    server = start_page_server(200, b'{"object": "list", "data": [], "has_more": false}', "application/json")
    connection = Connection.objects.create(name="old", base_url=f"{server.url}/v1", api_key_env=name)
    page = run_test(admin_client, connection)
    assert server.requests == []
    assert "one of the dashboard&#x27;s own settings" in page
    with pytest.raises(connections.ConnectionNotConfigured, match="dashboard's own settings"):
        connections.client_for(connection)


# --- hole 3: a new host needs the key again ------------------------------------------------------


@pytest.fixture
def stored_key_connection(admin_client, settings) -> Connection:
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    response = admin_client.post(
        "/connections/new/",
        connection_form(
            base_url="http://127.0.0.1:8100/v1",
            key_storage="encrypted",
            api_key="sk-old-host-key-abcdefgh1234",
            api_key_env="",
        ),
    )
    assert response.status_code == 302
    return Connection.objects.get(name="team-b")


@pytest.mark.parametrize(
    "new_url",
    ["http://127.0.0.1:8101/v1", "https://127.0.0.1:8100/v1", "http://localhost:8100/v1"],
    ids=["port", "scheme", "host"],
)
def test_changing_the_host_without_entering_the_key_again_is_refused(
    admin_client, stored_key_connection, new_url
):
    response = admin_client.post(
        f"/connections/{stored_key_connection.pk}/",
        connection_form(base_url=new_url, key_storage="encrypted", api_key="", api_key_env=""),
    )
    assert response.status_code == 200
    assert "enter the key again" in response.content.decode()
    stored_key_connection.refresh_from_db()
    assert stored_key_connection.base_url == "http://127.0.0.1:8100/v1"


def test_changing_the_host_with_a_new_key_is_accepted(admin_client, stored_key_connection):
    response = admin_client.post(
        f"/connections/{stored_key_connection.pk}/",
        connection_form(
            base_url="http://127.0.0.1:8101/v1",
            key_storage="encrypted",
            api_key="sk-new-host-key-ijklmnop5678",
            api_key_env="",
        ),
    )
    assert response.status_code == 302
    stored_key_connection.refresh_from_db()
    assert stored_key_connection.base_url == "http://127.0.0.1:8101/v1"
    assert connections.api_key_for(stored_key_connection) == "sk-new-host-key-ijklmnop5678"
    assert stored_key_connection.api_key_last4 == "5678"


def test_changing_only_the_path_keeps_the_stored_key(admin_client, stored_key_connection):
    response = admin_client.post(
        f"/connections/{stored_key_connection.pk}/",
        connection_form(
            base_url="http://127.0.0.1:8100/openai/v1", key_storage="encrypted", api_key="", api_key_env=""
        ),
    )
    assert response.status_code == 302
    stored_key_connection.refresh_from_db()
    assert connections.api_key_for(stored_key_connection) == "sk-old-host-key-abcdefgh1234"


def test_switching_to_a_variable_drops_the_stored_key(admin_client, stored_key_connection):
    response = admin_client.post(
        f"/connections/{stored_key_connection.pk}/",
        connection_form(base_url="http://127.0.0.1:8101/v1", key_storage="env", api_key_env="ACME_API_KEY"),
    )
    assert response.status_code == 302
    stored_key_connection.refresh_from_db()
    assert (stored_key_connection.api_key_encrypted, stored_key_connection.api_key_last4) == ("", "")
    assert stored_key_connection.api_key_env == "ACME_API_KEY"


# --- hole 3: "Test" quotes only the API's own error ----------------------------------------------


@pytest.fixture
def page_connection(start_page_server, monkeypatch, settings):
    settings.OPENAI_MAX_RETRIES = 0  # a 5xx would otherwise be retried with backoff

    def make(status: int, body: bytes, content_type: str = "text/html") -> Connection:
        monkeypatch.setenv("OPENAI_API_KEY_PAGES", "sk-test-pages-abcdefgh")
        server = start_page_server(status, body, content_type)
        return Connection.objects.create(
            name="pages", base_url=f"{server.url}/v1", api_key_env="OPENAI_API_KEY_PAGES"
        )

    return make


@pytest.mark.parametrize("status", [200, 404, 500])
def test_test_never_shows_the_body_of_a_page_that_is_not_the_api(admin_client, page_connection, status):
    html = f"<html><body><h1>Internal admin</h1><p>{MARKER}</p></body></html>".encode()
    connection = page_connection(status, html)
    page = run_test(admin_client, connection)
    assert MARKER not in page
    assert f"HTTP {status}" in page
    detail = AuditEvent.objects.get(action="connection_test").detail
    assert MARKER not in detail and f"HTTP {status}" in detail


def test_test_never_shows_a_json_body_that_is_not_an_api_error(admin_client, page_connection):
    connection = page_connection(403, json.dumps({"message": MARKER}).encode(), "application/json")
    page = run_test(admin_client, connection)
    assert MARKER not in page
    assert "HTTP 403" in page


def test_test_quotes_the_apis_own_error_message(admin_client, page_connection):
    body = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
    connection = page_connection(401, json.dumps(body).encode(), "application/json")
    page = run_test(admin_client, connection)
    assert "the API answered with an error: Incorrect API key provided" in page
