"""The API client's batch calls: retrieve, cancel, create, and ids kept inside the path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from batches.api.objects import BatchErrorItem, RequestCounts, Usage
from tests.unit.api_client.support import CREATED, CREATED_DT, batch_json


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
