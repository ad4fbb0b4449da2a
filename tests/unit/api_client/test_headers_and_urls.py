"""What the API client sends: auth and organisation headers, URLs joined onto the base, timeouts, config."""

from __future__ import annotations

import pytest
import respx

from batches.api.client import ClientConfig
from tests.unit.api_client.support import API_KEY, BASE_URL, batch_json, make_client


def test_it_sends_bearer_auth_organization_project_and_user_agent(api):
    route = api.get("/batches/b1").respond(json=batch_json("b1"))
    with make_client(organization="org-1", project="proj-1") as client:
        client.retrieve_batch("b1")

    headers = route.calls.last.request.headers
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["openai-organization"] == "org-1"
    assert headers["openai-project"] == "proj-1"
    assert headers["user-agent"].startswith("batch-dashboard/")
    assert "api-key" not in headers


def test_it_leaves_out_organization_and_project_when_not_configured(api, client):
    route = api.get("/batches/b1").respond(json=batch_json("b1"))

    client.retrieve_batch("b1")

    headers = route.calls.last.request.headers
    assert "openai-organization" not in headers
    assert "openai-project" not in headers


def test_azure_style_sends_an_api_key_header_and_the_extra_query():
    with respx.mock(assert_all_called=False) as router:
        route = router.get("https://res.openai.azure.com/openai/batches/b1").respond(json=batch_json("b1"))
        config = {"extra_query": {"api-version": "2024-10-21"}, "auth_style": "azure"}
        with make_client(base_url="https://res.openai.azure.com/openai", **config) as client:
            client.retrieve_batch("b1")

    request = route.calls.last.request
    assert request.headers["api-key"] == API_KEY
    assert "authorization" not in request.headers
    assert request.url.params["api-version"] == "2024-10-21"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://api.test/v1", "https://api.test/v1/batches/b1"),
        ("https://api.test/v1/", "https://api.test/v1/batches/b1"),
        ("http://127.0.0.1:8100/v1", "http://127.0.0.1:8100/v1/batches/b1"),
        ("http://127.0.0.1:8100", "http://127.0.0.1:8100/batches/b1"),
        ("http://127.0.0.1:8100/", "http://127.0.0.1:8100/batches/b1"),
    ],
)
def test_it_joins_paths_onto_the_base_url_with_or_without_a_trailing_slash(base_url, expected):
    with respx.mock(assert_all_called=False) as router:
        route = router.get(expected).respond(json=batch_json("b1"))
        with make_client(base_url=base_url) as client:
            client.retrieve_batch("b1")

    assert route.call_count == 1


def test_it_uses_the_configured_timeouts(api):
    route = api.get("/batches/b1").respond(json=batch_json("b1"))
    with make_client(connect_timeout=2.0, read_timeout=45.0) as client:
        client.retrieve_batch("b1")

    timeout = route.calls.last.request.extensions["timeout"]
    assert timeout == {"connect": 2.0, "read": 45.0, "write": 45.0, "pool": 2.0}


def test_the_config_repr_does_not_show_the_api_key():
    assert API_KEY not in repr(ClientConfig(base_url=BASE_URL, api_key=API_KEY))


def test_the_config_rejects_an_unknown_auth_style():
    with pytest.raises(ValueError):
        ClientConfig(base_url=BASE_URL, api_key=API_KEY, auth_style="basic")


def test_closing_the_client_closes_its_connection_pool(api):
    with make_client() as client:
        pass
    assert client._client.is_closed
