"""Unit tests for batches.api (client, errors, objects), with every HTTP exchange mocked by respx."""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from batches.api import client as api_client
from batches.api.client import BatchAPIClient, ClientConfig
from batches.api.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from batches.api.objects import ApiBatch, ApiBatchPage, BatchErrorItem, FileObject, RequestCounts, Usage

BASE_URL = "https://api.test/v1"
API_KEY = "sk-test-0123456789-SECRET"
CREATED = 1711471533
CREATED_DT = datetime(2024, 3, 26, 16, 45, 33, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers


def batch_json(batch_id: str = "batch_abc123", status: str = "in_progress", **overrides: Any):
    """A batch as the live API sends it, with any field overridden or removed (value ...)."""
    data: dict[str, Any] = {
        "id": batch_id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "model": "gpt-5-2025-08-07",
        "errors": None,
        "input_file_id": "file-in123",
        "completion_window": "24h",
        "status": status,
        "output_file_id": None,
        "error_file_id": None,
        "created_at": CREATED,
        "in_progress_at": CREATED + 5,
        "expires_at": CREATED + 86400,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 100, "completed": 40, "failed": 2},
        "usage": None,
        "metadata": {"customer_id": "user_123", "batch_description": "Nightly eval job"},
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not ...}


def file_json(file_id: str = "file-abc123", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": file_id,
        "object": "file",
        "bytes": 120000,
        "created_at": CREATED,
        "expires_at": CREATED + 2592000,
        "filename": "input.jsonl",
        "purpose": "batch",
        "status": "processed",
        "status_details": None,
    }
    data.update(overrides)
    return data


def list_json(*items: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    return {
        "object": "list",
        "data": list(items),
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def error_response(status: int, message: str = "nope", **headers: str) -> httpx.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None}}
    return httpx.Response(status, json=body, headers=headers)


class CutOffStream(httpx.SyncByteStream):
    """A body that dies part-way, as when a proxy drops the connection."""

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"id": "batch_'
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


class ChunkedStream(httpx.SyncByteStream):
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


def make_client(sleeps: list[float] | None = None, **config: Any) -> BatchAPIClient:
    config.setdefault("base_url", BASE_URL)
    config.setdefault("api_key", API_KEY)
    return BatchAPIClient(ClientConfig(**config), sleep=(sleeps if sleeps is not None else []).append)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> Iterator[BatchAPIClient]:
    with make_client(sleeps) as instance:
        yield instance


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


# --------------------------------------------------------------------------- batches


def test_it_retrieves_a_batch_and_parses_every_field(api, client):
    data = batch_json(
        status="completed",
        output_file_id="file-out",
        error_file_id="file-err",
        completed_at="2024-03-27T04:46:03Z",
        errors={"object": "list", "data": [{"code": "bad_line", "message": "x", "line": 3}]},
        usage={
            "input_tokens": 1500,
            "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens": 500,
            "output_tokens_details": {"reasoning_tokens": 300},
            "total_tokens": 2000,
        },
    )
    api.get("/batches/batch_abc123").respond(json=data)

    batch = client.retrieve_batch("batch_abc123")

    assert batch.id == "batch_abc123"
    assert batch.object == "batch"
    assert batch.endpoint == "/v1/chat/completions"
    assert batch.model == "gpt-5-2025-08-07"
    assert batch.status == "completed"
    assert batch.is_terminal and batch.is_known_status
    assert (batch.input_file_id, batch.output_file_id, batch.error_file_id) == (
        "file-in123",
        "file-out",
        "file-err",
    )
    assert batch.completion_window == "24h"
    assert batch.created_at == CREATED_DT
    assert batch.in_progress_at == CREATED_DT + timedelta(seconds=5)
    assert batch.completed_at == datetime(2024, 3, 27, 4, 46, 3, tzinfo=UTC)
    assert batch.failed_at is None
    assert batch.request_counts == RequestCounts(total=100, completed=40, failed=2)
    assert batch.errors == (BatchErrorItem(code="bad_line", message="x", param=None, line=3),)
    assert batch.usage == Usage(1500, 1024, 500, 300, 2000)
    assert batch.metadata == {"customer_id": "user_123", "batch_description": "Nightly eval job"}
    assert batch.raw == data
    assert batch.problems == ()


def test_it_cancels_a_batch_with_a_post(api, client):
    route = api.post("/batches/batch_abc123/cancel").respond(
        json=batch_json(status="cancelling", cancelling_at=CREATED + 60)
    )

    batch = client.cancel_batch("batch_abc123")

    assert route.call_count == 1
    assert batch.status == "cancelling"
    assert not batch.is_terminal
    assert batch.cancelling_at == CREATED_DT + timedelta(seconds=60)


def test_it_creates_a_batch_with_all_parameters(api, client):
    route = api.post("/batches").respond(json=batch_json(status="validating"))

    batch = client.create_batch(
        input_file_id="file-in123",
        endpoint="/v1/responses",
        completion_window="24h",
        metadata={"team": "evals"},
        output_expires_after={"anchor": "created_at", "seconds": 3600},
    )

    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "input_file_id": "file-in123",
        "endpoint": "/v1/responses",
        "completion_window": "24h",
        "metadata": {"team": "evals"},
        "output_expires_after": {"anchor": "created_at", "seconds": 3600},
    }
    assert batch.status == "validating"


def test_it_creates_a_batch_sending_only_the_required_fields_by_default(api, client):
    route = api.post("/batches").respond(json=batch_json(status="validating"))

    client.create_batch(input_file_id="file-in123", endpoint="/v1/chat/completions")

    assert json.loads(route.calls.last.request.content) == {
        "input_file_id": "file-in123",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }


def test_it_url_quotes_ids_so_they_cannot_escape_the_path(api, client):
    route = api.get(url__regex=r".*").respond(json=batch_json("../x"))

    client.retrieve_batch("../x")
    client.retrieve_batch("a/b?c#d")

    paths = [call.request.url.raw_path for call in route.calls]
    assert paths == [b"/v1/batches/..%2Fx", b"/v1/batches/a%2Fb%3Fc%23d"]


@pytest.mark.parametrize("bad_id", ["", ".", ".."])
def test_it_refuses_ids_that_would_change_the_path(api, client, bad_id):
    with pytest.raises(ValueError):
        client.retrieve_batch(bad_id)
    assert client.calls == 0


# --------------------------------------------------------------------------- pagination


def test_it_lists_a_single_page_with_the_limit_and_no_after(api, client):
    route = api.get("/batches").respond(json=list_json(batch_json("b1"), batch_json("b2")))

    pages = list(client.list_batch_pages(limit=2))

    assert len(pages) == 1
    assert isinstance(pages[0], ApiBatchPage)
    assert [b.id for b in pages[0].data] == ["b1", "b2"]
    assert (pages[0].first_id, pages[0].last_id, pages[0].has_more) == ("b1", "b2", False)
    assert dict(route.calls.last.request.url.params) == {"limit": "2"}


def test_it_follows_pages_passing_the_last_id_as_after(api, client):
    route = api.get("/batches").mock(
        side_effect=[
            httpx.Response(200, json=list_json(batch_json("b1"), batch_json("b2"), has_more=True)),
            httpx.Response(200, json=list_json(batch_json("b3"), has_more=True)),
            httpx.Response(200, json=list_json(batch_json("b4"), has_more=False)),
        ]
    )

    ids = [batch.id for batch in client.iter_batches(limit=2)]

    assert ids == ["b1", "b2", "b3", "b4"]
    afters = [call.request.url.params.get("after") for call in route.calls]
    assert afters == [None, "b2", "b3"]


def test_it_uses_the_item_id_as_cursor_even_when_last_id_is_missing(api, client):
    first = list_json(batch_json("b1"), has_more=True)
    del first["last_id"]
    route = api.get("/batches").mock(
        side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=list_json())]
    )

    list(client.iter_batches())

    assert route.calls[1].request.url.params["after"] == "b1"


def test_it_starts_after_the_given_cursor(api, client):
    route = api.get("/batches").respond(json=list_json(batch_json("b9")))

    list(client.iter_batches(after="b8", limit=50))

    assert dict(route.calls.last.request.url.params) == {"limit": "50", "after": "b8"}


@pytest.mark.parametrize(("asked", "sent"), [(0, "1"), (-5, "1"), (1, "1"), (100, "100"), (500, "100")])
def test_it_clamps_the_page_limit_to_1_through_100(api, client, asked, sent):
    route = api.get("/batches").respond(json=list_json())

    list(client.list_batch_pages(limit=asked))

    assert route.calls.last.request.url.params["limit"] == sent


def test_it_stops_paging_when_has_more_is_false(api, client):
    route = api.get("/batches").respond(json=list_json(batch_json("b1"), has_more=False))

    assert len(list(client.list_batch_pages())) == 1
    assert route.call_count == 1


def test_it_stops_paging_when_has_more_is_missing(api, client):
    body = list_json(batch_json("b1"))
    del body["has_more"]
    route = api.get("/batches").respond(json=body)

    assert [b.id for b in client.iter_batches()] == ["b1"]
    assert route.call_count == 1


def test_it_stops_paging_when_an_empty_page_claims_has_more(api, client):
    route = api.get("/batches").respond(json=list_json(has_more=True))

    assert list(client.list_batch_pages()) == []
    assert route.call_count == 1


def test_a_list_item_without_an_id_is_skipped_and_the_rest_of_the_page_kept(api, client):
    no_id = batch_json("ignored")
    del no_id["id"]
    api.get("/batches").respond(json=list_json(batch_json("b1"), no_id, 42, batch_json("b2")))

    (page,) = list(client.list_batch_pages())

    assert [batch.id for batch in page.data] == ["b1", "b2"]
    assert len(page.skipped) == 2
    assert page.skipped[0].startswith("item 2 of the page: ")
    assert "no 'id'" in page.skipped[0]


def test_paging_goes_on_past_a_malformed_last_item(api, client):
    no_id = batch_json("ignored")
    del no_id["id"]
    route = api.get("/batches").mock(
        side_effect=[
            httpx.Response(200, json={"object": "list", "data": [batch_json("b1"), no_id], "has_more": True}),
            httpx.Response(
                200, json={"object": "list", "data": [no_id, batch_json("b2")], "has_more": False}
            ),
        ]
    )

    assert [batch.id for batch in client.iter_batches()] == ["b1", "b2"]
    assert route.calls[1].request.url.params["after"] == "b1"


def test_a_page_of_only_malformed_items_goes_on_from_its_last_id_or_stops_with_an_error(api, client):
    bad = {"object": "list", "data": ["x", "y"], "has_more": True, "last_id": "b5"}
    route = api.get("/batches").mock(
        side_effect=[httpx.Response(200, json=bad), httpx.Response(200, json=list_json(batch_json("b6")))]
    )
    assert [batch.id for batch in client.iter_batches()] == ["b6"]
    assert route.calls[1].request.url.params["after"] == "b5"

    del bad["last_id"]
    api.get("/batches").respond(json=bad)
    with pytest.raises(MalformedResponseError, match="no usable item"):
        list(client.iter_batches())


def test_it_stops_paging_when_a_page_repeats_ids(api, client):
    same_page = list_json(batch_json("b1"), batch_json("b2"), has_more=True)
    route = api.get("/batches").respond(json=same_page)

    ids = [b.id for b in client.iter_batches()]

    assert ids == ["b1", "b2"]
    assert route.call_count == 2


def test_it_yields_only_the_new_items_of_a_partly_repeated_page(api, client):
    route = api.get("/batches").mock(
        side_effect=[
            httpx.Response(200, json=list_json(batch_json("b1"), batch_json("b2"), has_more=True)),
            httpx.Response(200, json=list_json(batch_json("b2"), batch_json("b3"), has_more=True)),
            httpx.Response(200, json=list_json(batch_json("b3"), has_more=True)),
        ]
    )

    pages = list(client.list_batch_pages())

    assert [[b.id for b in page.data] for page in pages] == [["b1", "b2"], ["b3"]]
    assert route.calls[2].request.url.params["after"] == "b3"
    assert route.call_count == 3


def test_a_list_without_a_data_array_is_malformed(api, client):
    api.get("/batches").respond(json={"object": "list", "has_more": False})

    with pytest.raises(MalformedResponseError):
        list(client.iter_batches())


# --------------------------------------------------------------------------- files


def test_it_uploads_a_file_as_multipart_with_purpose_batch(api, client):
    route = api.post("/files").respond(json=file_json())

    uploaded = client.upload_file(filename="input.jsonl", content=b'{"custom_id": "1"}\n')

    request = route.calls.last.request
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = request.content
    assert b'name="purpose"\r\n\r\nbatch\r\n' in body
    assert b'name="file"; filename="input.jsonl"' in body
    assert b'{"custom_id": "1"}\n' in body
    assert isinstance(uploaded, FileObject)
    assert uploaded.id == "file-abc123"


def test_it_uploads_a_file_object_again_in_full_when_retrying(api, client, sleeps):
    route = api.post("/files").mock(side_effect=[httpx.Response(500), httpx.Response(200, json=file_json())])
    content = io.BytesIO(b'{"custom_id": "a"}\n{"custom_id": "b"}\n')

    client.upload_file(filename="in.jsonl", content=content, purpose="batch")

    assert route.call_count == 2
    for call in route.calls:
        assert b'{"custom_id": "a"}\n{"custom_id": "b"}\n' in call.request.content
    assert len(sleeps) == 1


def test_it_retrieves_a_file(api, client):
    api.get("/files/file-abc123").respond(json=file_json(extra_field=1))

    file = client.retrieve_file("file-abc123")

    assert file.id == "file-abc123"
    assert file.object == "file"
    assert file.bytes == 120000
    assert file.created_at == CREATED_DT
    assert file.expires_at == CREATED_DT + timedelta(days=30)
    assert (file.filename, file.purpose, file.status, file.status_details) == (
        "input.jsonl",
        "batch",
        "processed",
        None,
    )
    assert file.raw["extra_field"] == 1


def test_a_file_with_nulls_and_missing_fields_still_parses():
    file = FileObject.from_json({"id": "file-1", "bytes": None, "created_at": "garbage"})

    assert file.id == "file-1"
    assert file.object == "file"
    assert file.bytes is None
    assert file.created_at is None
    assert file.filename is None


def test_it_lists_files_by_purpose_across_pages(api, client):
    route = api.get("/files").mock(
        side_effect=[
            httpx.Response(200, json=list_json(file_json("f1"), has_more=True)),
            httpx.Response(200, json=list_json(file_json("f2"), has_more=False)),
        ]
    )

    ids = [f.id for f in client.list_files(purpose="batch", limit=1)]

    assert ids == ["f1", "f2"]
    assert dict(route.calls[0].request.url.params) == {"limit": "1", "purpose": "batch"}
    assert dict(route.calls[1].request.url.params) == {
        "limit": "1",
        "purpose": "batch",
        "after": "f1",
    }


def test_it_streams_file_content_in_chunks(api, client):
    content = b"".join(b'{"custom_id": "%d"}\n' % i for i in range(50))
    api.get("/files/file-out/content").respond(content=content)

    with client.stream_file_content("file-out", chunk_size=64) as chunks:
        received = list(chunks)

    assert len(received) > 1
    assert all(len(chunk) <= 64 for chunk in received)
    assert b"".join(received) == content


def test_it_yields_jsonl_lines_split_across_chunk_boundaries(api, client):
    lines = [json.dumps({"custom_id": f"req-{i}", "pad": "x" * 40}).encode() for i in range(3000)]
    body = b"\r\n".join(lines) + b"\n\n"
    # Odd network chunks so that lines straddle the 64 KiB read boundaries.
    api.get("/files/file-out/content").respond(
        stream=ChunkedStream(*(body[i : i + 7001] for i in range(0, len(body), 7001)))
    )

    assert list(client.iter_file_lines("file-out")) == lines


def test_a_file_download_cut_off_mid_stream_raises_malformed_response(api, client):
    api.get("/files/file-out/content").respond(stream=CutOffStream())

    with (
        pytest.raises(MalformedResponseError, match="cut off"),
        client.stream_file_content("file-out") as chunks,
    ):
        list(chunks)


def test_a_file_download_is_retried_when_it_fails_before_streaming(api, client, sleeps):
    route = api.get("/files/file-out/content").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, content=b"line\n")]
    )

    assert list(client.iter_file_lines("file-out")) == [b"line"]
    assert route.call_count == 2


def test_a_missing_file_download_raises_not_found(api, client):
    api.get("/files/nope/content").mock(return_value=error_response(404, "No such file"))

    with pytest.raises(NotFoundError, match="No such file"), client.stream_file_content("nope"):
        pass


# --------------------------------------------------------------------------- headers and URLs


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


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (418, APIStatusError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
    ],
)
def test_each_status_code_raises_its_error_class_with_the_error_details(api, status, error_class):
    body = {
        "error": {
            "message": "Something specific",
            "type": "invalid_request_error",
            "param": "batch_id",
            "code": "some_code",
        }
    }
    api.get("/batches/b1").respond(status, json=body, headers={"x-request-id": "req_42"})

    with make_client(max_retries=0) as client, pytest.raises(error_class) as caught:
        client.retrieve_batch("b1")

    error = caught.value
    assert type(error) is error_class
    assert isinstance(error, APIError)
    assert error.status_code == status
    assert error.message == "Something specific"
    assert (error.type, error.param, error.code) == ("invalid_request_error", "batch_id", "some_code")
    assert error.request_id == "req_42"
    assert "Something specific" in str(error) and "req_42" in str(error)


@pytest.mark.parametrize(
    ("body", "expected_message"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "HTTP 502 from the API: <html>"),
        (b"", "HTTP 502 from the API"),
        (b'{"unexpected": true}', "HTTP 502 from the API"),
    ],
)
def test_an_error_body_that_is_not_the_usual_json_still_gives_a_sensible_error(api, body, expected_message):
    api.get("/batches/b1").respond(502, content=body, headers={"x-request-id": "req_7"})

    with make_client(max_retries=0) as client, pytest.raises(InternalServerError) as caught:
        client.retrieve_batch("b1")

    assert caught.value.message.startswith(expected_message)
    assert caught.value.status_code == 502
    assert caught.value.request_id == "req_7"
    assert caught.value.type is None


def test_an_error_given_as_a_bare_string_becomes_the_message(api, client):
    api.get("/batches/b1").respond(400, json={"error": "nope, not today"})

    with pytest.raises(BadRequestError, match="nope, not today"):
        client.retrieve_batch("b1")


def test_the_api_key_echoed_by_the_server_is_redacted_everywhere(api, client):
    api.get("/batches/b1").respond(
        401,
        json={
            "error": {
                "message": f"Incorrect API key provided: {API_KEY}.",
                "type": "invalid_request_error",
                "param": API_KEY,
                "code": f"invalid_api_key:{API_KEY}",
            }
        },
        headers={"x-request-id": f"req-{API_KEY}"},
    )

    with pytest.raises(AuthenticationError) as caught:
        client.retrieve_batch("b1")

    error = caught.value
    rendered = [str(error), repr(error), *map(str, vars(error).values()), *map(str, error.args)]
    assert all(API_KEY not in text for text in rendered)
    assert "[REDACTED]" in str(error)


def test_the_api_key_is_redacted_from_a_non_json_error_body(api, client):
    api.get("/batches/b1").respond(400, content=f"bad key {API_KEY}".encode())

    with pytest.raises(BadRequestError) as caught:
        client.retrieve_batch("b1")

    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)


def test_a_rate_limit_error_carries_retry_after(api):
    api.get("/batches/b1").respond(
        429, json={"error": {"message": "slow down"}}, headers={"retry-after": "7"}
    )

    with make_client(max_retries=0) as client, pytest.raises(RateLimitError) as caught:
        client.retrieve_batch("b1")

    assert caught.value.retry_after == 7.0


def test_errors_survive_pickling_with_their_details():
    error = RateLimitError("slow", code="rate", request_id="req_1", status_code=429, retry_after=2.0)

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is RateLimitError
    assert (copy.message, copy.code, copy.request_id, copy.status_code, copy.retry_after) == (
        "slow",
        "rate",
        "req_1",
        429,
        2.0,
    )


def test_a_success_body_that_is_not_json_is_malformed(api, client):
    api.get("/batches/b1").respond(200, content=b"<html>proxy login</html>", headers={"x-request-id": "r1"})

    with pytest.raises(MalformedResponseError) as caught:
        client.retrieve_batch("b1")

    assert caught.value.request_id == "r1"
    assert caught.value.status_code == 200
    assert client.calls == 1


@pytest.mark.parametrize("body", [[1, 2], "batch", {"object": "batch", "status": "completed"}])
def test_json_of_the_wrong_shape_is_malformed(api, client, body):
    api.get("/batches/b1").respond(json=body)

    with pytest.raises(MalformedResponseError):
        client.retrieve_batch("b1")


def test_a_connection_error_is_retried_then_raised_as_api_connection_error(api, client, sleeps):
    route = api.get("/batches/b1").mock(side_effect=httpx.ConnectError("Connection refused"))

    with pytest.raises(APIConnectionError, match="Connection refused"):
        client.retrieve_batch("b1")

    assert route.call_count == 3
    assert len(sleeps) == 2


def test_a_read_timeout_is_retried_then_raised_as_api_timeout_error(api, client):
    route = api.get("/batches/b1").mock(side_effect=httpx.ReadTimeout("timed out"))

    with pytest.raises(APITimeoutError):
        client.retrieve_batch("b1")

    assert route.call_count == 3


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_it_retries_retryable_statuses_up_to_max_retries(api, client, sleeps, status):
    route = api.get("/batches/b1").respond(status)

    with pytest.raises(APIStatusError):
        client.retrieve_batch("b1")

    assert route.call_count == 3
    assert client.calls == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_it_does_not_retry_client_errors(api, client, sleeps, status):
    route = api.get("/batches/b1").mock(return_value=error_response(status))

    with pytest.raises(APIStatusError):
        client.retrieve_batch("b1")

    assert route.call_count == 1
    assert sleeps == []


def test_it_succeeds_after_a_transient_failure_and_counts_every_call(api, client, sleeps):
    route = api.get("/batches/b1").mock(
        side_effect=[
            httpx.Response(500),
            httpx.ConnectError("refused"),
            httpx.Response(200, json=batch_json("b1")),
        ]
    )

    assert client.retrieve_batch("b1").id == "b1"
    assert route.call_count == 3
    assert client.calls == 3
    assert len(sleeps) == 2


def test_max_retries_zero_means_a_single_attempt(api, sleeps):
    route = api.get("/batches/b1").respond(503)

    with make_client(sleeps, max_retries=0) as client, pytest.raises(InternalServerError):
        client.retrieve_batch("b1")

    assert route.call_count == 1
    assert sleeps == []


def test_it_honours_retry_after_ms(api, client, sleeps):
    api.get("/batches/b1").mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after-ms": "1500", "retry-after": "9"}),
            httpx.Response(200, json=batch_json("b1")),
        ]
    )

    client.retrieve_batch("b1")

    assert sleeps == [1.5]


def test_it_honours_retry_after_in_seconds(api, client, sleeps):
    api.get("/batches/b1").mock(
        side_effect=[
            httpx.Response(503, headers={"retry-after": "12"}),
            httpx.Response(200, json=batch_json("b1")),
        ]
    )

    client.retrieve_batch("b1")

    assert sleeps == [12.0]


def test_it_honours_retry_after_as_an_http_date(api, client, sleeps):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    api.get("/batches/b1").mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after": when}),
            httpx.Response(200, json=batch_json("b1")),
        ]
    )

    client.retrieve_batch("b1")

    assert len(sleeps) == 1
    assert 18.0 < sleeps[0] <= 20.0


@pytest.mark.parametrize(
    "headers",
    [{"retry-after": "120"}, {"retry-after-ms": "61000"}, {"retry-after": "-3"}, {"retry-after": "soon"}],
)
def test_it_ignores_a_retry_after_outside_0_to_60_seconds_and_backs_off(api, client, sleeps, headers):
    api.get("/batches/b1").mock(
        side_effect=[httpx.Response(429, headers=headers), httpx.Response(200, json=batch_json("b1"))]
    )

    client.retrieve_batch("b1")

    assert len(sleeps) == 1
    assert 0.375 <= sleeps[0] <= 0.5


def test_backoff_doubles_from_half_a_second_and_is_capped_at_8_seconds_with_jitter(api, sleeps):
    api.get("/batches/b1").respond(500)

    with make_client(sleeps, max_retries=7) as client, pytest.raises(InternalServerError):
        client.retrieve_batch("b1")

    for delay, base in zip(sleeps, [0.5, 1, 2, 4, 8, 8, 8], strict=True):
        assert 0.75 * base <= delay <= base


@pytest.mark.parametrize(("random_value", "factor"), [(0.0, 1.0), (1.0, 0.75)])
def test_jitter_shortens_the_backoff_by_at_most_a_quarter(api, sleeps, monkeypatch, random_value, factor):
    monkeypatch.setattr(api_client.random, "random", lambda: random_value)
    api.get("/batches/b1").respond(500)

    with make_client(sleeps, max_retries=3) as client, pytest.raises(InternalServerError):
        client.retrieve_batch("b1")

    assert sleeps == [0.5 * factor, 1.0 * factor, 2.0 * factor]


def test_x_should_retry_true_makes_a_client_error_retryable(api, client):
    route = api.get("/batches/b1").mock(
        side_effect=[
            error_response(400, **{"x-should-retry": "true"}),
            httpx.Response(200, json=batch_json("b1")),
        ]
    )

    client.retrieve_batch("b1")

    assert route.call_count == 2


def test_x_should_retry_false_stops_a_server_error_from_being_retried(api, client):
    route = api.get("/batches/b1").respond(503, headers={"x-should-retry": "false"})

    with pytest.raises(InternalServerError):
        client.retrieve_batch("b1")

    assert route.call_count == 1


def test_a_body_cut_off_mid_stream_on_a_get_is_retried(api, client):
    route = api.get("/batches/b1").mock(
        side_effect=[
            httpx.Response(200, stream=CutOffStream()),
            httpx.Response(200, json=batch_json("b1")),
        ]
    )

    assert client.retrieve_batch("b1").id == "b1"
    assert route.call_count == 2


def test_a_body_cut_off_on_every_attempt_raises_malformed_response(api, client):
    route = api.get("/batches/b1").mock(
        side_effect=lambda request: httpx.Response(200, stream=CutOffStream())
    )

    with pytest.raises(MalformedResponseError, match="cut off"):
        client.retrieve_batch("b1")

    assert route.call_count == 3


def test_cancel_is_retried_because_cancelling_twice_is_harmless(api, client):
    route = api.post("/batches/b1/cancel").mock(
        side_effect=[httpx.Response(500), httpx.Response(200, json=batch_json("b1", "cancelling"))]
    )

    assert client.cancel_batch("b1").status == "cancelling"
    assert route.call_count == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(429, headers={"retry-after": "1"}),
        httpx.Response(503, headers={"x-should-retry": "true"}),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=["500", "429", "x-should-retry", "read-timeout", "disconnected"],
)
def test_create_is_never_retried_once_the_request_may_have_reached_the_server(api, client, sleeps, failure):
    route = api.post("/batches").mock(
        side_effect=[failure, httpx.Response(200, json=batch_json(status="validating"))]
    )

    with pytest.raises(APIError):
        client.create_batch(input_file_id="file-in123", endpoint="/v1/chat/completions")

    assert route.call_count == 1
    assert client.calls == 1
    assert sleeps == []


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")])
def test_create_is_retried_when_the_connection_was_never_made(api, client, sleeps, failure):
    route = api.post("/batches").mock(
        side_effect=[failure, httpx.Response(200, json=batch_json(status="validating"))]
    )

    batch = client.create_batch(input_file_id="file-in123", endpoint="/v1/chat/completions")

    assert batch.status == "validating"
    assert route.call_count == 2
    assert len(sleeps) == 1


# --------------------------------------------------------------------------- parsing


def test_a_batch_with_only_an_id_and_everything_else_null_or_missing_parses():
    batch = ApiBatch.from_json(
        {
            "id": "b1",
            "status": "validating",
            "errors": None,
            "request_counts": None,
            "usage": None,
            "metadata": None,
            "model": None,
            "output_file_id": None,
            "created_at": None,
        }
    )

    assert batch.id == "b1"
    assert batch.object == "batch"
    assert batch.endpoint is None and batch.model is None and batch.completion_window is None
    assert batch.input_file_id is None and batch.output_file_id is None
    assert batch.created_at is None and batch.cancelled_at is None
    assert batch.request_counts is None
    assert batch.errors == ()
    assert batch.usage is None
    assert batch.metadata is None
    assert batch.problems == ()


def test_a_batch_without_an_id_is_malformed():
    with pytest.raises(MalformedResponseError):
        ApiBatch.from_json(batch_json(batch_id=...))


def test_a_missing_status_is_flagged_not_fatal():
    batch = ApiBatch.from_json(batch_json(status=...))

    assert batch.status == ""
    assert not batch.is_terminal
    assert any("status" in problem for problem in batch.problems)


def test_empty_string_file_ids_mean_none():
    batch = ApiBatch.from_json(batch_json(input_file_id="", output_file_id="", error_file_id=""))

    assert (batch.input_file_id, batch.output_file_id, batch.error_file_id) == (None, None, None)
    assert batch.problems == ()


def test_unknown_fields_are_kept_in_raw():
    data = batch_json(new_feature={"nested": [1, 2]}, priority="high")

    batch = ApiBatch.from_json(data)

    assert batch.raw["new_feature"] == {"nested": [1, 2]}
    assert batch.raw["priority"] == "high"
    assert batch.problems == ()


def test_an_unknown_status_is_kept_as_given_and_is_not_terminal():
    batch = ApiBatch.from_json(batch_json(status="paused_for_review"))

    assert batch.status == "paused_for_review"
    assert not batch.is_known_status
    assert not batch.is_terminal


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        ("validating", False),
        ("in_progress", False),
        ("finalizing", False),
        ("cancelling", False),
        ("completed", True),
        ("failed", True),
        ("expired", True),
        ("cancelled", True),
    ],
)
def test_exactly_the_four_final_statuses_are_terminal(status, terminal):
    batch = ApiBatch.from_json(batch_json(status=status))

    assert batch.is_known_status
    assert batch.is_terminal is terminal


@pytest.mark.parametrize(
    "value",
    [
        1711471533,
        1711471533.0,
        "2024-03-26T16:45:33Z",
        "2024-03-26T16:45:33+00:00",
        "2024-03-26T18:45:33+02:00",
        "2024-03-26T11:45:33-05:00",
        "2024-03-26T16:45:33",
    ],
)
def test_timestamps_may_be_unix_seconds_or_iso_8601_and_become_aware_utc(value):
    batch = ApiBatch.from_json(batch_json(created_at=value))

    assert batch.created_at == CREATED_DT
    assert batch.created_at.tzinfo is UTC
    assert batch.problems == ()


def test_fractional_unix_timestamps_keep_their_fraction():
    batch = ApiBatch.from_json(batch_json(created_at=CREATED + 0.5))

    assert batch.created_at == CREATED_DT + timedelta(milliseconds=500)


@pytest.mark.parametrize("value", ["yesterday", "", True, 1e20, float("nan"), {"at": 1}])
def test_an_unparseable_timestamp_becomes_none_and_is_flagged(value):
    batch = ApiBatch.from_json(batch_json(expires_at=value))

    assert batch.expires_at is None
    assert len(batch.problems) == 1
    assert batch.problems[0].startswith("expires_at")


def test_negative_counts_are_kept_and_flagged():
    batch = ApiBatch.from_json(batch_json(request_counts={"total": 10, "completed": -1, "failed": 0}))

    assert batch.request_counts == RequestCounts(total=10, completed=-1, failed=0)
    assert batch.problems == ("request_counts.completed is negative (-1)",)


def test_completed_greater_than_total_is_kept_and_flagged():
    batch = ApiBatch.from_json(batch_json(request_counts={"total": 10, "completed": 12, "failed": 0}))

    assert batch.request_counts == RequestCounts(total=10, completed=12, failed=0)
    assert batch.problems == ("request_counts: completed (12) > total (10)",)


def test_completed_plus_failed_greater_than_total_is_flagged():
    batch = ApiBatch.from_json(batch_json(request_counts={"total": 10, "completed": 8, "failed": 3}))

    assert batch.problems == ("request_counts: completed + failed (11) > total (10)",)


def test_a_count_that_is_not_a_number_is_flagged_and_read_as_zero():
    batch = ApiBatch.from_json(batch_json(request_counts={"total": "ten", "completed": 0, "failed": 0}))

    assert batch.request_counts == RequestCounts(total=0, completed=0, failed=0)
    assert len(batch.problems) == 1


@pytest.mark.parametrize(
    "errors",
    [None, ..., {"object": "list", "data": None}, {"object": "list", "data": []}],
)
def test_absent_or_empty_errors_give_an_empty_tuple(errors):
    batch = ApiBatch.from_json(batch_json(errors=errors))

    assert batch.errors == ()
    assert batch.problems == ()


def test_batch_errors_are_parsed_from_the_list_object():
    errors = {
        "object": "list",
        "data": [
            {"code": "invalid_json", "message": "Line 4 is not JSON", "param": None, "line": 4},
            {"code": "model_not_found", "message": "No such model", "param": "body.model"},
        ],
    }

    batch = ApiBatch.from_json(batch_json(status="failed", errors=errors))

    assert batch.errors == (
        BatchErrorItem("invalid_json", "Line 4 is not JSON", None, 4),
        BatchErrorItem("model_not_found", "No such model", "body.model", None),
    )


def test_usage_without_token_details_reads_as_zeros():
    usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}

    batch = ApiBatch.from_json(batch_json(usage=usage))

    assert batch.usage == Usage(
        input_tokens=10, cached_tokens=0, output_tokens=5, reasoning_tokens=0, total_tokens=15
    )


def test_usage_with_null_details_reads_as_zeros():
    usage = {
        "input_tokens": 10,
        "input_tokens_details": None,
        "output_tokens": 5,
        "output_tokens_details": None,
        "total_tokens": 15,
    }

    assert ApiBatch.from_json(batch_json(usage=usage)).usage == Usage(10, 0, 5, 0, 15)


def test_metadata_values_that_are_not_strings_are_converted_and_flagged():
    batch = ApiBatch.from_json(batch_json(metadata={"n": 3, "ok": "yes"}))

    assert batch.metadata == {"n": "3", "ok": "yes"}
    assert len(batch.problems) == 1


def test_a_batch_is_hashable_and_compares_by_value():
    first = ApiBatch.from_json(batch_json())
    second = ApiBatch.from_json(batch_json())

    assert first == second
    assert len({first, second}) == 1
