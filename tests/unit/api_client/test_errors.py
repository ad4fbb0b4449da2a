"""API errors as the client raises them: one class per status, odd error bodies, key redaction, pickling."""

from __future__ import annotations

import pickle

import httpx
import pytest

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
from tests.unit.api_client.support import API_KEY, make_client


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
