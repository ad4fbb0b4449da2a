"""One batch with values the database cannot hold never costs the rest of its page (issue 13, hole 9).

The simulator serves the values through /_sim/patch, as an API (or a proxy in front of it) might send
them; every test runs on SQLite and, with DATABASE_URL=postgres://..., on PostgreSQL, whose integer
columns stop at 2**31 - 1."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from batches import schedule, sync, tasks
from batches.models import Batch, ProgressSnapshot
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db

HUGE = 10**20
INT32_MAX = 2**31 - 1


def patch(simulator, batch_id: str, values: dict) -> None:
    # json.dumps escapes what httpx's own encoding (UTF-8) cannot carry, a lone surrogate included.
    body = json.dumps(values).encode()
    response = simulator.control.post(
        f"/_sim/patch/{batch_id}", content=body, headers={"content-type": "application/json"}
    )
    response.raise_for_status()


def pick(simulator, status: str, skip: int = 0) -> str:
    """A batch of the first list page (the newest 100) with this status."""
    return [b["id"] for b in simulator.batches()[:100] if b["status"] == status][skip]


def test_out_of_range_counts_are_flagged_and_the_rest_of_the_page_is_saved(simulator_connection, simulator):
    huge = pick(simulator, "in_progress")
    big = pick(simulator, "completed")
    patch(
        simulator,
        huge,
        {
            "request_counts": {"total": HUGE, "completed": HUGE, "failed": 0},
            "usage": {"input_tokens": HUGE, "output_tokens": 5, "total_tokens": HUGE},
        },
    )
    patch(
        simulator,
        big,
        {
            "request_counts": {"total": 2**31, "completed": 2**31, "failed": 0},
            "usage": {"input_tokens": 2**31, "output_tokens": 2**40, "total_tokens": 2**31 + 2**40},
        },
    )

    result = sync.full_sync(simulator_connection)

    assert result.created == simulator.count()
    assert Batch.objects.filter(connection=simulator_connection).count() == simulator.count()
    stored = Batch.objects.get(batch_id=huge)
    # The raw JSON keeps what the API sent; the columns hold what they can, and the batch says why.
    assert stored.raw["request_counts"]["total"] == HUGE
    assert stored.raw["usage"]["input_tokens"] == HUGE
    assert stored.total_requests == INT32_MAX and stored.completed_requests == INT32_MAX
    assert stored.input_tokens is None and stored.total_tokens is None and stored.output_tokens == 5
    assert any("request_counts.total" in p and "invalid value from the API" in p for p in stored.problems)
    assert any("usage.input_tokens" in p and "invalid value from the API" in p for p in stored.problems)
    assert stored.done_ratio == 1.0

    stored = Batch.objects.get(batch_id=big)
    assert stored.raw["request_counts"]["total"] == 2**31
    assert stored.total_requests == INT32_MAX
    # Token counts are 64-bit columns: these fit.
    assert (stored.input_tokens, stored.output_tokens) == (2**31, 2**40)
    assert any("request_counts.total" in p and "invalid value from the API" in p for p in stored.problems)
    assert not any("usage" in p for p in stored.problems)

    # The good neighbours are as the API sent them, without a flag.
    good = Batch.objects.exclude(batch_id__in=[huge, big])
    assert not any(b.problems for b in good)
    assert all(b.raw == s for b, s in zip(good.order_by("batch_id"), _served(simulator, good), strict=True))


def _served(simulator, batches) -> list[dict]:
    by_id = {b["id"]: b for b in simulator.batches()}
    return [by_id[b.batch_id] for b in batches.order_by("batch_id")]


def test_the_flag_shows_on_the_detail_page_and_as_a_mark_on_the_list_row(
    client, simulator_connection, simulator
):
    huge = pick(simulator, "in_progress")
    patch(simulator, huge, {"request_counts": {"total": HUGE}})
    sync.full_sync(simulator_connection)
    client.force_login(make_user("viewer"))
    batch = Batch.objects.get(batch_id=huge)

    detail = client.get(f"/batches/{batch.pk}/").content.decode()
    assert "invalid value from the API" in detail
    row = client.get(f"/batches/{batch.pk}/row/", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-invalid="1"' in row
    other = Batch.objects.exclude(batch_id=huge).filter(is_terminal=False).first()
    assert (
        'data-invalid="1"'
        not in client.get(f"/batches/{other.pk}/row/", HTTP_HX_REQUEST="true").content.decode()
    )


def test_counts_that_grow_out_of_range_update_the_batch_and_its_snapshots_clamped(
    simulator_connection, simulator
):
    running = pick(simulator, "in_progress")
    sync.full_sync(simulator_connection)
    patch(simulator, running, {"request_counts": {"total": 2**31, "completed": 2**40, "failed": 3}})

    result = sync.refresh_active(simulator_connection)

    assert result.updated >= 1
    stored = Batch.objects.get(batch_id=running)
    assert (stored.completed_requests, stored.failed_requests, stored.total_requests) == (
        INT32_MAX,
        3,
        INT32_MAX,
    )
    assert ProgressSnapshot.objects.filter(batch=stored, completed=INT32_MAX, total=INT32_MAX).exists()
    assert any("invalid value from the API" in p for p in stored.problems)


def test_a_batch_that_cannot_be_saved_is_skipped_and_counted_not_its_page(
    simulator_connection, simulator, caplog
):
    # A lone surrogate is valid JSON ("\ud800") but no database can store it as text.
    broken = pick(simulator, "completed")
    patch(simulator, broken, {"model": "\ud800"})

    with caplog.at_level("WARNING", logger="batches.sync"):
        result = sync.full_sync(simulator_connection)

    assert result.unsaved == 1
    assert result.created == simulator.count() - 1
    assert not Batch.objects.filter(batch_id=broken).exists()
    assert Batch.objects.filter(connection=simulator_connection).count() == simulator.count() - 1
    assert broken in caplog.text and "skipped" in caplog.text
    # A complete walk does not take the unsaved batch for one the API stopped listing.
    assert not Batch.objects.filter(listed=False).exists()

    # Once the API sends it whole again, the next sync saves it.
    patch(simulator, broken, {})
    sync.full_sync(simulator_connection, complete=True)
    assert Batch.objects.filter(batch_id=broken).exists()


def test_a_sync_that_fails_outside_the_api_records_the_failure_and_backs_off(
    simulator_connection, simulator, redis_settings, monkeypatch
):
    # The database going away mid-sync is not an APIError: it must still count as a failed run.
    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(sync, "_upsert_page", database_gone)
    before = timezone.now()

    outcome = tasks.full_sync_batches(simulator_connection.pk)

    assert outcome.startswith("failed: next attempt at")
    simulator_connection.refresh_from_db()
    assert simulator_connection.consecutive_failures == 1
    assert "server closed the connection" in simulator_connection.last_error
    assert simulator_connection.next_attempt_at > before + timedelta(seconds=1)
    assert not schedule.may_call_api(simulator_connection)
    # The next run waits out the backoff instead of failing again at once.
    assert tasks.full_sync_batches(simulator_connection.pk).startswith("skipped: waiting")


def test_the_parser_clamps_request_counts_and_drops_token_counts_beyond_their_columns():
    from batches.api.objects import MAX_REQUEST_COUNT, ApiBatch

    parsed = ApiBatch.from_json(
        {
            "id": "batch_x",
            "status": "in_progress",
            "request_counts": {"total": 2**31, "completed": -(2**40), "failed": 1e20},
            "usage": {
                "input_tokens": 2**63,
                "output_tokens": 2**63 - 1,
                "total_tokens": 10**400,
                "input_tokens_details": {"cached_tokens": 7},
            },
        }
    )
    counts = parsed.request_counts
    assert (counts.total, counts.completed, counts.failed) == (
        MAX_REQUEST_COUNT,
        -MAX_REQUEST_COUNT - 1,
        MAX_REQUEST_COUNT,
    )
    usage = parsed.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.cached_tokens) == (
        None,
        2**63 - 1,
        None,
        7,
    )
    flagged = [p for p in parsed.problems if "invalid value from the API" in p]
    assert [p.split(":")[0] for p in flagged] == [
        "request_counts.total",
        "request_counts.completed",
        "request_counts.failed",
        "usage.input_tokens",
        "usage.total_tokens",
    ]
    assert all(len(p) < 200 for p in parsed.problems)


def test_a_batch_whose_eta_would_fall_beyond_the_calendar_is_saved_without_one(
    simulator_connection, simulator
):
    # A million years to go at this rate: no datetime can hold that end.
    slow = pick(simulator, "in_progress")
    patch(
        simulator,
        slow,
        {"in_progress_at": 1, "request_counts": {"total": INT32_MAX, "completed": 1, "failed": 0}},
    )

    result = sync.full_sync(simulator_connection)

    assert result.unsaved == 0
    stored = Batch.objects.get(batch_id=slow)
    assert stored.total_requests == INT32_MAX and stored.eta_at is None


def test_sync_batches_command_records_a_database_failure_too(simulator_connection, simulator, monkeypatch):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(sync, "_upsert_page", database_gone)
    with pytest.raises(CommandError):
        call_command("sync_batches", "--connection", simulator_connection.name)
    simulator_connection.refresh_from_db()
    assert simulator_connection.consecutive_failures == 1
    assert simulator_connection.next_attempt_at is not None
