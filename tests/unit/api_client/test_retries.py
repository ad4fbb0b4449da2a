"""When the API client retries and how long it waits: statuses, Retry-After, backoff, jitter, create."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from batches.api import client as api_client
from batches.api.errors import APIError, APIStatusError, InternalServerError, MalformedResponseError
from tests.unit.api_client.support import CutOffStream, batch_json, error_response, make_client


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
