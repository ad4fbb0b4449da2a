"""Parsing API objects leniently: missing or odd fields are kept or flagged, fatal only without an id."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from batches.api.errors import MalformedResponseError
from batches.api.objects import ApiBatch, BatchErrorItem, RequestCounts, Usage
from tests.unit.api_client.support import CREATED, CREATED_DT, batch_json


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
