"""A simulated batch lives like a real one: each phase at its planned second, validation, cancelling,
expiry, statuses that only move forwards and progress in bursts.

The clock is frozen (speed 0) and moved with /_sim/advance, so every life-cycle step is observed
at the exact second the plan says it happens, and one second before.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from simulator.state import SimWorld
from tests.simulator.support import ALLOWED_MOVES, T0, TIMESTAMPS, Sim, assert_error, chat_lines


def _reachable(status: str) -> set[str]:
    """Every status a batch can be in after `status`, however coarsely it is sampled."""
    found, todo = {status}, [status]
    while todo:
        for after in ALLOWED_MOVES[todo.pop()] - found:
            found.add(after)
            todo.append(after)
    return found


def test_a_batch_from_an_upload_reaches_each_phase_at_its_planned_second(sim: Sim) -> None:
    uploaded = sim.upload(chat_lines(60))
    created = sim.create(uploaded["id"], metadata={"project": "tests"})
    plan = sim.plan(created["id"])
    assert created["status"] == "validating"
    assert created["created_at"] == sim.now()
    assert created["expires_at"] == created["created_at"] + 86_400
    assert all(created[name] is None for name in TIMESTAMPS)
    assert created["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert created["usage"] is None and created["model"] is None and created["errors"] is None
    assert created["output_file_id"] is None and created["error_file_id"] is None
    assert created["metadata"] == {"project": "tests"}

    sim.advance_to(plan["in_progress_at"] - 1)
    assert sim.batch(created["id"])["status"] == "validating"
    sim.advance_to(plan["in_progress_at"])
    running = sim.batch(created["id"])
    assert running["status"] == "in_progress"
    assert running["in_progress_at"] == plan["in_progress_at"]
    assert running["request_counts"]["total"] == 60
    assert running["model"] == "gpt-4o-mini"
    assert running["usage"] is not None
    assert running["finalizing_at"] is None and running["output_file_id"] is None

    previous = 0
    step = max(1, (plan["done_at"] - plan["in_progress_at"]) // 10)
    for t in range(plan["in_progress_at"], plan["done_at"] - 1, step):
        sim.advance_to(t)
        counts = sim.batch(created["id"])["request_counts"]
        done = counts["completed"] + counts["failed"]
        assert previous <= done < 60
        previous = done

    sim.advance_to(plan["done_at"] - 1)
    assert sim.batch(created["id"])["status"] == "in_progress"
    sim.advance_to(plan["done_at"])
    finalizing = sim.batch(created["id"])
    assert finalizing["status"] == "finalizing"
    assert finalizing["finalizing_at"] == plan["done_at"]
    counts = finalizing["request_counts"]
    assert counts["completed"] + counts["failed"] == 60
    # The real API names the result files only once the batch has completed.
    assert finalizing["output_file_id"] is None and finalizing["error_file_id"] is None
    assert finalizing["completed_at"] is None

    sim.advance_to(plan["completed_at"] - 1)
    assert sim.batch(created["id"])["status"] == "finalizing"
    sim.advance_to(plan["completed_at"])
    done = sim.batch(created["id"])
    assert done["status"] == "completed"
    assert done["completed_at"] == plan["completed_at"]
    assert (done["error_file_id"] is not None) == (done["request_counts"]["failed"] > 0)
    for name in ("failed_at", "expired_at", "cancelling_at", "cancelled_at"):
        assert done[name] is None

    output = sim.content(done["output_file_id"])
    assert len(output) == done["request_counts"]["completed"]
    sent = {f"ticket-{n}" for n in range(60)}
    assert {line["custom_id"] for line in output} <= sent
    for line in output:
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion" and body["model"].startswith("gpt-4o-mini")
        assert done["in_progress_at"] <= body["created"] <= done["finalizing_at"]
    usage = done["usage"]
    assert usage["input_tokens"] == sum(x["response"]["body"]["usage"]["prompt_tokens"] for x in output)
    assert usage["output_tokens"] == sum(x["response"]["body"]["usage"]["completion_tokens"] for x in output)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    output_file = sim.api.get(f"/files/{done['output_file_id']}").json()
    assert output_file["purpose"] == "batch_output"
    assert output_file["filename"] == f"{done['id']}_output.jsonl"
    assert output_file["created_at"] == done["completed_at"]


def test_embedding_results_hold_unit_vectors_of_the_requested_size(sim: Sim) -> None:
    rows = [
        {"input": "a short text", "dimensions": 7},
        {"input": ["two", "inputs"]},
    ]
    lines = "".join(
        json.dumps(
            {
                "custom_id": f"e{n}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "text-embedding-3-small", **row},
            }
        )
        + "\n"
        for n, row in enumerate(rows)
    )
    created = sim.create(sim.upload(lines)["id"], endpoint="/v1/embeddings")
    sim.advance_to(sim.plan(created["id"])["completed_at"])
    done = sim.batch(created["id"])
    by_id = {line["custom_id"]: line["response"]["body"] for line in sim.content(done["output_file_id"])}
    failed = (
        {line["custom_id"] for line in sim.content(done["error_file_id"])} if done["error_file_id"] else set()
    )
    assert set(by_id) | failed == {"e0", "e1"}
    expected = {"e0": [7], "e1": [1536, 1536]}
    for custom_id, body in by_id.items():
        vectors = [item["embedding"] for item in body["data"]]
        assert [len(v) for v in vectors] == expected[custom_id]
        assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
        for vector in vectors:
            assert 0.5 < sum(x * x for x in vector) ** 0.5 < 1.5
            assert all(-1 < x < 1 for x in vector)


def test_an_invalid_upload_fails_validation_with_line_numbers(sim: Sim) -> None:
    good = chat_lines(3).splitlines()
    broken = json.loads(good[1])
    del broken["custom_id"]
    wrong_url = json.loads(good[2])
    wrong_url["url"] = "/v1/embeddings"
    other_model = json.loads(chat_lines(5, model="gpt-4.1").splitlines()[4])
    lines = [good[0], '{"custom_id": "x", "method": "POST"', json.dumps(broken), json.dumps(wrong_url)]
    lines += [good[0], json.dumps(other_model)]
    uploaded = sim.upload("\n".join(lines) + "\n")
    created = sim.create(uploaded["id"])
    plan = sim.plan(created["id"])
    assert plan["fails_validation"]
    sim.advance_to(plan["in_progress_at"] - 1)
    assert sim.batch(created["id"])["status"] == "validating"
    sim.advance_to(plan["in_progress_at"])
    failed = sim.batch(created["id"])
    assert failed["status"] == "failed"
    assert failed["failed_at"] == plan["in_progress_at"]
    assert failed["in_progress_at"] is None
    assert failed["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert failed["output_file_id"] is None and failed["error_file_id"] is None
    assert failed["errors"]["object"] == "list"
    found = [(e["line"], e["code"], e["param"]) for e in failed["errors"]["data"]]
    assert found == [
        (2, "invalid_json_line", None),
        (3, "missing_required_parameter", "custom_id"),
        (4, "invalid_url", "url"),
        (5, "duplicate_custom_id", "custom_id"),
        (6, "mismatched_model", "body.model"),
    ]
    assert all(e["message"] for e in failed["errors"]["data"])
    sim.advance_to(plan["in_progress_at"] + 7 * 86_400)
    assert sim.batch(created["id"])["status"] == "failed"


def test_an_empty_upload_fails_validation_without_a_line(sim: Sim) -> None:
    created = sim.create(sim.upload("")["id"])
    sim.advance_to(sim.plan(created["id"])["in_progress_at"])
    failed = sim.batch(created["id"])
    assert failed["status"] == "failed"
    assert [(e["code"], e["line"]) for e in failed["errors"]["data"]] == [("empty_file", None)]


def test_cancelling_lasts_a_while_then_leaves_partial_results(sim: Sim) -> None:
    created = sim.create(sim.upload(chat_lines(400))["id"])
    plan = sim.plan(created["id"])
    sim.advance_to(plan["in_progress_at"] + (plan["done_at"] - plan["in_progress_at"]) // 2)
    before = sim.batch(created["id"])["request_counts"]

    response = sim.api.post(f"/batches/{created['id']}/cancel")
    assert response.status_code == 200
    cancelling = response.json()
    assert cancelling["status"] == "cancelling"
    assert cancelling["cancelling_at"] == sim.now()
    assert cancelling["cancelled_at"] is None and cancelling["output_file_id"] is None
    assert cancelling["request_counts"] == before

    plan = sim.plan(created["id"])
    assert 60 <= plan["cancel_seconds"] <= 600
    again = sim.api.post(f"/batches/{created['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelling"
    sim.advance_to(plan["cancel_at"] + plan["cancel_seconds"] - 1)
    assert sim.batch(created["id"])["status"] == "cancelling"
    sim.advance_to(plan["cancel_at"] + plan["cancel_seconds"])
    cancelled = sim.batch(created["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_at"] == plan["cancel_at"] + plan["cancel_seconds"]
    assert cancelled["finalizing_at"] is None and cancelled["completed_at"] is None
    counts = cancelled["request_counts"]
    assert counts == before and 0 < counts["completed"] < 400

    output = sim.content(cancelled["output_file_id"])
    assert len(output) == counts["completed"]
    errors = sim.content(cancelled["error_file_id"])
    unfinished = [e for e in errors if e["response"] is None]
    assert len(unfinished) == 400 - counts["completed"] - counts["failed"]
    assert {e["error"]["code"] for e in unfinished} == {"batch_cancelled"}
    seen = [line["custom_id"] for line in output + errors]
    assert sorted(seen) == sorted(f"ticket-{n}" for n in range(400))

    assert sim.api.post(f"/batches/{created['id']}/cancel").status_code == 400


def test_a_batch_cancelled_while_validating_never_starts(sim: Sim) -> None:
    created = sim.create(sim.upload(chat_lines(5))["id"])
    assert sim.api.post(f"/batches/{created['id']}/cancel").json()["status"] == "cancelling"
    plan = sim.plan(created["id"])
    sim.advance_to(plan["cancel_at"] + plan["cancel_seconds"] + 86_400)
    cancelled = sim.batch(created["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["in_progress_at"] is None and cancelled["usage"] is None
    assert cancelled["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert cancelled["output_file_id"] is None and cancelled["error_file_id"] is None


@pytest.mark.parametrize("status", ["completed", "failed", "expired", "cancelled", "finalizing"])
def test_cancelling_a_batch_that_is_finishing_or_finished_is_a_400(sim: Sim, status: str) -> None:
    target = next(b for b in sim.control.get("/_sim/state").json()["batches"] if b["status"] == status)
    response = sim.api.post(f"/batches/{target['id']}/cancel")
    assert_error(response, 400, f"Cannot cancel a batch with status '{status}'.")
    assert sim.batch(target["id"])["status"] == status


def test_a_batch_too_slow_for_its_window_expires_with_partial_results() -> None:
    world = SimWorld(seed=3, batches=300, speed=0, start=T0)
    doomed = next(
        p
        for p in (world.plan(batch_id) for batch_id in world.batch_ids())
        if p["will_expire"] and p["cancel_at"] is None and p["expires_at"] > T0
    )
    world.advance(doomed["expires_at"] - 1 - world.now())
    running = world.get_batch(doomed["id"])
    assert running["status"] == "in_progress" and running["expired_at"] is None
    world.advance(1)
    expired = world.get_batch(doomed["id"])
    assert expired["status"] == "expired"
    assert expired["expired_at"] == expired["expires_at"] == doomed["expires_at"]
    assert expired["finalizing_at"] is None and expired["completed_at"] is None
    counts = expired["request_counts"]
    assert counts["completed"] > 0 and counts["completed"] + counts["failed"] < counts["total"]
    output = _read_lines(world, expired["output_file_id"])
    errors = _read_lines(world, expired["error_file_id"])
    assert len(output) == counts["completed"]
    late = [e for e in errors if e["response"] is None]
    assert len(late) == counts["total"] - counts["completed"] - counts["failed"]
    assert {e["error"]["code"] for e in late} == {"batch_expired"}
    assert len(errors) - len(late) == counts["failed"]
    world.advance(86_400)
    assert world.get_batch(doomed["id"]) == expired


def _read_lines(world: SimWorld, file_id: str) -> list[dict[str, Any]]:
    size, chunks = world.open_file(file_id)
    data = b"".join(chunks)
    assert len(data) == size
    return [json.loads(line) for line in data.splitlines()]


def test_statuses_only_move_forwards_and_timestamps_never_change_once_set() -> None:
    world = SimWorld(seed=11, batches=150, speed=0, start=T0)
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(60):
        for batch in world.state()["batches"]:
            before = seen.get(batch["id"])
            if before is not None:
                assert batch["status"] in _reachable(before["status"])
                for name in TIMESTAMPS:
                    if before[name] is not None:
                        assert batch[name] == before[name]
                for name in ("completed", "failed"):
                    assert batch["request_counts"][name] >= before["request_counts"][name]
            for name in TIMESTAMPS:
                assert batch[name] is None or batch[name] <= world.now()
            seen[batch["id"]] = batch
        world.advance(900)
    assert all(b["status"] in ("completed", "failed", "expired", "cancelled") for b in seen.values())


def test_progress_is_uneven_with_bursts_and_pauses() -> None:
    world = SimWorld(seed=5, batches=200, speed=0, start=T0)
    live = [
        world.plan(b["id"])
        for b in world.state()["batches"]
        if b["status"] == "in_progress" and b["request_counts"]["total"] >= 500
    ]
    assert live
    plan = max(live, key=lambda p: p["total"])
    start = world.now()
    samples = []
    for _ in range(40):
        samples.append(world.get_batch(plan["id"])["request_counts"]["completed"])
        world.advance(max(1, (plan["done_at"] - start) // 40))
    deltas = [b - a for a, b in itertools.pairwise(samples)]
    assert all(d >= 0 for d in deltas)
    assert len(set(deltas)) > 3, deltas
