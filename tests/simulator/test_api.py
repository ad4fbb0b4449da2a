"""The API simulator behaves like the real Batch and Files API, including when it misbehaves.

The clock is frozen (speed 0) and moved with /_sim/advance, so every life-cycle step is observed
at the exact second the plan says it happens, and one second before.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.endpoints import parse_multipart
from simulator.faults import FaultConfig
from simulator.server import SimServer, start_in_thread, stop
from simulator.sources import ProfileKey, SeededRequests
from simulator.state import SimWorld
from simulator.validation import validate_input

T0 = 1_760_000_000
ALLOWED_MOVES = {
    "validating": {"validating", "in_progress", "failed", "cancelling"},
    "in_progress": {"in_progress", "finalizing", "expired", "cancelling"},
    "finalizing": {"finalizing", "completed"},
    "cancelling": {"cancelling", "cancelled"},
    "completed": {"completed"},
    "failed": {"failed"},
    "expired": {"expired"},
    "cancelled": {"cancelled"},
}


def _reachable(status: str) -> set[str]:
    """Every status a batch can be in after `status`, however coarsely it is sampled."""
    found, todo = {status}, [status]
    while todo:
        for after in ALLOWED_MOVES[todo.pop()] - found:
            found.add(after)
            todo.append(after)
    return found


TIMESTAMPS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


class Sim:
    """A running simulator and an authenticated client for it."""

    def __init__(self, world: SimWorld, *, api_key: str | None = None) -> None:
        self.world = world
        self.server: SimServer
        self.server, self.base_url = start_in_thread(world, api_key=api_key)
        self.root = self.base_url.removesuffix("/v1")
        self.api = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {api_key or 'sk-test'}"}
        )
        self.control = httpx.Client(base_url=self.root)

    def close(self) -> None:
        self.api.close()
        self.control.close()
        stop(self.server)

    def now(self) -> int:
        return self.control.post("/_sim/advance", json={"seconds": 0}).json()["now"]

    def advance_to(self, t: int) -> None:
        assert t >= self.now()
        self.control.post("/_sim/advance", json={"seconds": t - self.now()}).raise_for_status()

    def plan(self, batch_id: str) -> dict[str, Any]:
        return self.control.get(f"/_sim/plan/{batch_id}").json()

    def batch(self, batch_id: str) -> dict[str, Any]:
        response = self.api.get(f"/batches/{batch_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def upload(self, text: str, filename: str = "requests.jsonl", purpose: str = "batch") -> dict[str, Any]:
        response = self.api.post(
            "/files", files={"file": (filename, text.encode())}, data={"purpose": purpose}
        )
        assert response.status_code == 200, response.text
        return response.json()

    def create(self, file_id: str, endpoint: str = "/v1/chat/completions", **extra: Any) -> dict[str, Any]:
        body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", **extra}
        response = self.api.post("/batches", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def content(self, file_id: str) -> list[dict[str, Any]]:
        response = self.api.get(f"/files/{file_id}/content")
        assert response.status_code == 200, response.text
        assert len(response.content) == self.api.get(f"/files/{file_id}").json()["bytes"]
        return [json.loads(line) for line in response.text.splitlines()]

    def set_faults(self, **config: Any) -> None:
        self.control.post("/_sim/faults", json=config).raise_for_status()


@pytest.fixture
def sim() -> Iterator[Sim]:
    running = Sim(SimWorld(seed=7, batches=40, speed=0, start=T0))
    yield running
    running.close()


def chat_lines(count: int, model: str = "gpt-4o-mini") -> str:
    return "".join(
        json.dumps(
            {
                "custom_id": f"ticket-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": model, "messages": [{"role": "user", "content": f"Case {n}"}]},
            }
        )
        + "\n"
        for n in range(count)
    )


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    if message is not None:
        assert error["message"] == message
    return error


# --- life-cycle --------------------------------------------------------------------------------


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


# --- files -------------------------------------------------------------------------------------


def test_files_round_trip(sim: Sim) -> None:
    text = chat_lines(4)
    uploaded = sim.upload(text, filename="tickets-été.jsonl")
    assert uploaded["id"].startswith("file-") and uploaded["object"] == "file"
    assert uploaded["bytes"] == len(text.encode()) and uploaded["purpose"] == "batch"
    assert uploaded["filename"] == "tickets-été.jsonl" and uploaded["status"] == "processed"
    assert uploaded["expires_at"] == uploaded["created_at"] + 30 * 86_400
    assert sim.api.get(f"/files/{uploaded['id']}").json() == uploaded
    assert sim.api.get(f"/files/{uploaded['id']}/content").content == text.encode()

    listed = sim.api.get("/files", params={"purpose": "batch", "limit": 5}).json()
    assert listed["object"] == "list" and listed["data"][0] == uploaded and listed["has_more"]
    created = [f["created_at"] for f in listed["data"]]
    assert created == sorted(created, reverse=True)
    oldest_first = sim.api.get("/files", params={"order": "asc", "limit": 3}).json()["data"]
    assert [f["created_at"] for f in oldest_first] == sorted(f["created_at"] for f in oldest_first)
    page2 = sim.api.get("/files", params={"purpose": "batch", "after": listed["last_id"]}).json()
    assert not {f["id"] for f in page2["data"]} & {f["id"] for f in listed["data"]}

    other = sim.upload("notes", filename="notes.txt", purpose="user_data")
    assert other["expires_at"] is None
    deleted = sim.api.delete(f"/files/{uploaded['id']}")
    assert deleted.json() == {"id": uploaded["id"], "object": "file", "deleted": True}
    missing = f"No such File object: {uploaded['id']}"
    assert_error(sim.api.get(f"/files/{uploaded['id']}"), 404, missing)
    assert_error(sim.api.get(f"/files/{uploaded['id']}/content"), 404, missing)
    assert_error(sim.api.delete(f"/files/{uploaded['id']}"), 404, missing)
    remaining = sim.api.get("/files").json()["data"]
    assert uploaded["id"] not in {f["id"] for f in remaining} and remaining[0]["id"] == other["id"]


def test_uploads_are_checked_like_the_real_api(sim: Sim) -> None:
    response = sim.api.post("/files", files={"file": ("a.csv", b"x")}, data={"purpose": "batch"})
    assert_error(response, 400, "Invalid file format for Batch API. Must be .jsonl")
    response = sim.api.post("/files", files={"file": ("a.jsonl", b"x")}, data={"purpose": "cats"})
    assert assert_error(response, 400)["param"] == "purpose"
    response = sim.api.post("/files", files={"file": ("a.jsonl", b"x")})
    assert assert_error(response, 400)["code"] == "missing_required_parameter"
    response = sim.api.post("/files", data={"purpose": "batch"}, files={"other": ("a", b"x")})
    assert assert_error(response, 400)["param"] == "file"
    assert_error(sim.api.post("/files", json={"purpose": "batch"}), 400)
    response = sim.api.post(
        "/files",
        files={"file": ("a.jsonl", b"{}\n")},
        data={"purpose": "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "7200"},
    )
    assert response.json()["expires_at"] == response.json()["created_at"] + 7200


def test_multipart_parser_keeps_binary_content_and_fields() -> None:
    payload = b"\x00\r\n--not-the-boundary\r\nend"
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="b.jsonl"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n--XyZ--\r\n"
    )
    form = parse_multipart(body, "multipart/form-data; boundary=XyZ")
    assert form == {"purpose": (None, b"batch"), "file": ("b.jsonl", payload)}


def test_seeded_files_exist_and_their_sizes_match_their_content(sim: Sim) -> None:
    batches = sim.control.get("/_sim/state").json()["batches"]
    for status in ("completed", "expired", "cancelled", "failed", "in_progress"):
        batch = next(b for b in batches if b["status"] == status)
        requests = sim.content(batch["input_file_id"])
        assert len(requests) >= batch["request_counts"]["total"]
        if status != "failed":
            assert {r["url"] for r in requests} == {batch["endpoint"]}
        for key in ("output_file_id", "error_file_id"):
            if batch[key] is not None:
                lines = sim.content(batch[key])
                assert lines and all(line["id"].startswith("batch_req_") for line in lines)
    # A result file exists only once its batch is over.
    running = next(b for b in batches if b["status"] == "in_progress")
    plan = sim.plan(running["id"])
    assert plan["final_at"] > sim.now() and running["output_file_id"] is None
    sim.advance_to(plan["final_at"])
    finished = sim.batch(running["id"])
    assert finished["status"] == plan["final_status"]
    assert sim.api.get(f"/files/{finished['output_file_id']}").status_code == 200


def test_every_seeded_file_size_is_exact() -> None:
    world = SimWorld(seed=2, batches=60, speed=0, start=T0)
    files = world.list_files()["data"]
    assert len({f["id"] for f in files}) == len(files)
    for item in files:
        size, chunks = world.open_file(item["id"])
        assert size == item["bytes"] == len(b"".join(chunks))


def test_failed_seeded_input_files_really_contain_what_validation_reports() -> None:
    world = SimWorld(seed=9, batches=200, speed=0, start=T0)
    failed = [b for b in world.state()["batches"] if b["status"] == "failed"]
    assert failed
    for batch in failed:
        _size, chunks = world.open_file(batch["input_file_id"])
        _, errors = validate_input(b"".join(chunks), batch["endpoint"])
        reported = batch["errors"]["data"]
        if reported[0]["code"] != "token_limit_exceeded":
            assert errors == reported


@pytest.mark.parametrize(
    ("endpoint", "model", "long_system"),
    [
        ("/v1/chat/completions", "gpt-4o-mini", True),
        ("/v1/responses", "o4-mini", False),
        ("/v1/embeddings", "text-embedding-3-large", False),
        ("/v1/completions", "gpt-3.5-turbo-instruct", False),
        ("/v1/moderations", "omni-moderation-latest", False),
    ],
)
def test_seeded_closed_forms_agree_with_the_lines_they_describe(
    endpoint: str, model: str, long_system: bool
) -> None:
    key = ProfileKey(endpoint, model, "task", 10, long_system)
    source = SeededRequests(key, total=437, phase=123, batch_id="batch_x")
    assert source.input_size() == len("".join(source.input_lines()).encode())
    for n in (0, 1, 200, 437):
        output = list(source.output_lines(n, lambda i: T0 + i))
        assert source.output_size(n) == len("".join(output).encode())
        for code in (None, "batch_expired", "batch_cancelled"):
            errors = list(source.error_lines(n, code, lambda i: T0 + i))
            assert source.error_size(n, code) == len("".join(errors).encode())
        failed = list(source.error_lines(n, None, lambda i: T0))
        assert source.failed_among(n) == len(failed) == n - len(output)
        usage = [json.loads(line)["response"]["body"].get("usage") or {} for line in output]
        inputs = sum(u.get("prompt_tokens", u.get("input_tokens", 0)) for u in usage)
        assert source.usage_among(n).input_tokens == inputs
    if long_system:
        assert source.usage_among(437).cached_tokens > 0


# --- errors, auth, pagination ------------------------------------------------------------------


def test_authentication_is_required_and_checked() -> None:
    running = Sim(SimWorld(seed=1, batches=3, speed=0, start=T0), api_key="sk-right-key-1234")
    try:
        anonymous = httpx.get(running.base_url + "/batches")
        error = assert_error(anonymous, 401)
        assert error["message"].startswith("You didn't provide an API key.")
        wrong = httpx.get(running.base_url + "/batches", headers={"Authorization": "Bearer sk-nope-5678"})
        assert assert_error(wrong, 401)["code"] == "invalid_api_key"
        assert "sk-nope-5678" not in wrong.text
        right = httpx.get(
            running.base_url + "/batches", headers={"Authorization": "Bearer sk-right-key-1234"}
        )
        assert right.status_code == 200
        azure = httpx.get(running.base_url + "/batches", headers={"api-key": "sk-right-key-1234"})
        assert azure.status_code == 200
        assert httpx.get(running.root + "/_sim/state").status_code == 200
    finally:
        running.close()
    open_sim = Sim(SimWorld(seed=1, batches=1, speed=0, start=T0))
    try:
        any_key = httpx.get(open_sim.base_url + "/batches", headers={"Authorization": "Bearer x"})
        assert any_key.status_code == 200
        empty = httpx.get(open_sim.base_url + "/batches", headers={"Authorization": "Bearer"})
        assert empty.status_code == 401
        basic = httpx.get(open_sim.base_url + "/batches", headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401
    finally:
        open_sim.close()


def test_unknown_things_get_the_real_404_and_405_shapes(sim: Sim) -> None:
    assert_error(sim.api.get("/batches/batch_nope"), 404, "No batch found with id 'batch_nope'.")
    assert_error(sim.api.post("/batches/batch_nope/cancel"), 404, "No batch found with id 'batch_nope'.")
    assert_error(sim.api.get("/files/file-nope"), 404, "No such File object: file-nope")
    assert_error(sim.api.get("/nothing/here"), 404, "Invalid URL (GET /v1/nothing/here)")
    response = sim.api.delete("/batches")
    assert_error(response, 405)
    assert response.headers["allow"] == "GET, POST"
    for response in (sim.api.get("/batches"), sim.api.get("/batches/nope"), sim.control.get("/_sim/state")):
        assert response.headers["x-request-id"].startswith("req_")
        assert int(response.headers["openai-processing-ms"]) >= 0


def test_batch_creation_parameters_are_validated(sim: Sim) -> None:
    file_id = sim.upload(chat_lines(2))["id"]
    good = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}

    def post(body: Any) -> dict[str, Any]:
        response = sim.api.post("/batches", json=body)
        assert response.status_code in (400, 404), response.text
        return response.json()["error"]

    assert post({**good, "endpoint": None})["code"] == "missing_required_parameter"
    assert post({k: v for k, v in good.items() if k != "input_file_id"})["param"] == "input_file_id"
    assert post({**good, "endpoint": "/v1/fine_tuning"})["code"] == "invalid_value"
    assert post({**good, "completion_window": "48h"})["param"] == "completion_window"
    assert post({**good, "metadata": {str(n): "v" for n in range(17)}})["param"] == "metadata"
    assert post({**good, "metadata": {"k" * 65: "v"}})["code"] == "string_above_max_length"
    assert post({**good, "metadata": {"k": "v" * 513}})["code"] == "string_above_max_length"
    assert post({**good, "metadata": {"k": 1}})["code"] == "invalid_type"
    late = {"anchor": "created_at", "seconds": 100}
    assert post({**good, "output_expires_after": late})["code"] == "integer_below_min_value"
    assert post({**good, "color": "blue"})["message"] == "Unrecognized request argument supplied: color"
    assert post({**good, "input_file_id": "file-missing"})["message"] == "No such File object: file-missing"
    notes = sim.upload("x", filename="n.txt", purpose="user_data")["id"]
    assert post({**good, "input_file_id": notes})["param"] == "input_file_id"
    response = sim.api.post("/batches", content=b"{not json", headers={"Content-Type": "application/json"})
    assert assert_error(response, 400)["message"].startswith("We could not parse the JSON body")
    fine = {**good, "metadata": {"k" * 64: "v" * 512}}
    fine["output_expires_after"] = {"anchor": "created_at", "seconds": 3600}
    assert sim.api.post("/batches", json=fine).status_code == 200


def test_list_pagination_is_newest_first_with_cursors(sim: Sim) -> None:
    first = sim.api.get("/batches").json()
    assert first["object"] == "list" and len(first["data"]) == 20 and first["has_more"]
    assert first["first_id"] == first["data"][0]["id"] and first["last_id"] == first["data"][-1]["id"]
    seen, after = [], None
    while True:
        page = sim.api.get("/batches", params={"limit": 7, **({"after": after} if after else {})}).json()
        seen.extend(page["data"])
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert len(seen) == 40 and len({b["id"] for b in seen}) == 40
    assert [b["created_at"] for b in seen] == sorted((b["created_at"] for b in seen), reverse=True)
    assert [b["id"] for b in seen] == [b["id"] for b in sim.control.get("/_sim/state").json()["batches"]]
    last = sim.api.get("/batches", params={"after": seen[-2]["id"], "limit": 5}).json()
    assert [b["id"] for b in last["data"]] == [seen[-1]["id"]] and last["has_more"] is False
    end = sim.api.get("/batches", params={"after": seen[-1]["id"]}).json()
    assert end["data"] == [] and end["has_more"] is False and end["first_id"] is None
    exact = sim.api.get("/batches", params={"limit": 40}).json()
    assert len(exact["data"]) == 40 and exact["has_more"] is False
    assert len(sim.api.get("/batches", params={"limit": 100}).json()["data"]) == 40

    created = sim.create(sim.upload(chat_lines(1))["id"])
    assert sim.api.get("/batches", params={"limit": 1}).json()["data"][0]["id"] == created["id"]

    assert (
        assert_error(sim.api.get("/batches", params={"limit": 0}), 400)["code"] == "integer_below_min_value"
    )
    assert assert_error(sim.api.get("/batches", params={"limit": 101}), 400)["param"] == "limit"
    assert assert_error(sim.api.get("/batches", params={"limit": "ten"}), 400)["code"] == "invalid_type"
    # An `after` that names no batch is refused rather than silently ending the listing.
    unknown = sim.api.get("/batches", params={"after": "batch_unknown"})
    assert assert_error(unknown, 400)["param"] == "after"
    assert assert_error(sim.api.get("/files", params={"limit": 10_001}), 400)["param"] == "limit"
    assert assert_error(sim.api.get("/files", params={"order": "up"}), 400)["param"] == "order"


# --- faults ------------------------------------------------------------------------------------


def test_rate_limits_come_with_retry_after_headers(sim: Sim) -> None:
    sim.set_faults(rate_429=1.0, retry_after_seconds=2)
    response = sim.api.get("/batches")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2" and response.headers["retry-after-ms"] == "2000"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert response.headers["x-request-id"].startswith("req_")
    # Control endpoints never see faults.
    assert sim.control.get("/_sim/state").status_code == 200
    assert sim.control.get("/_sim/faults").json()["rate_429"] == 1.0
    sim.set_faults()
    assert sim.api.get("/batches").status_code == 200


def test_server_errors_are_5xx_with_the_real_bodies(sim: Sim) -> None:
    sim.set_faults(rate_5xx=1.0, seed=4)
    statuses = set()
    for _ in range(30):
        response = sim.api.get("/batches")
        statuses.add(response.status_code)
        if response.status_code == 502:
            assert response.headers["content-type"] == "text/html"
        else:
            assert response.json()["error"]["type"] == "server_error"
    assert statuses == {500, 502, 503}


def test_a_5xx_on_a_write_may_come_after_the_write_took_effect(sim: Sim) -> None:
    file_id = sim.upload(chat_lines(2))["id"]
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    count = len(sim.world.batch_ids())
    sim.set_faults(rate_5xx=1.0, rate_5xx_after_effect=0.0)
    assert sim.api.post("/batches", json=body).status_code >= 500
    assert len(sim.world.batch_ids()) == count
    sim.set_faults(rate_5xx=1.0, rate_5xx_after_effect=1.0)
    assert sim.api.post("/batches", json=body).status_code >= 500
    assert len(sim.world.batch_ids()) == count + 1
    sim.set_faults(rate_5xx=1.0, rate_5xx_after_effect=1.0)
    assert sim.api.get("/batches").status_code >= 500  # reads never have effects to speak of


def test_cut_off_bodies_are_seen_by_httpx_as_errors(sim: Sim) -> None:
    completed = next(b for b in sim.world.state()["batches"] if b["status"] == "completed")
    sim.set_faults(rate_cutoff=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        sim.api.get("/batches")
    with pytest.raises(httpx.RemoteProtocolError):
        sim.api.get(f"/files/{completed['output_file_id']}/content")
    sim.set_faults()
    assert sim.api.get("/batches").status_code == 200  # the client reconnects


def test_slow_responses_take_their_time(sim: Sim) -> None:
    sim.set_faults(rate_slow=1.0, slow_seconds=0.3)
    started = time.monotonic()
    response = sim.api.get("/batches", params={"limit": 1})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert int(response.headers["openai-processing-ms"]) >= 300


def test_faults_follow_their_seed(sim: Sim) -> None:
    def run() -> list[int]:
        sim.set_faults(rate_429=0.3, rate_5xx=0.3, seed=99)
        return [sim.api.get("/batches", params={"limit": 1}).status_code for _ in range(25)]

    first = run()
    assert first == run()
    assert {200, 429} <= set(first)


def test_bad_fault_settings_are_refused(sim: Sim) -> None:
    assert sim.control.post("/_sim/faults", json={"rate_429": 2}).status_code == 400
    assert sim.control.post("/_sim/faults", json={"nonsense": 1}).status_code == 400
    assert sim.control.post("/_sim/advance", json={"seconds": -5}).status_code == 400
    with pytest.raises(ValueError):
        FaultConfig(rate_429=0.7, rate_5xx=0.7)


# --- seeding, determinism, persistence ---------------------------------------------------------


def test_the_same_seed_gives_the_same_world() -> None:
    one = SimWorld(seed=42, batches=120, speed=0, start=T0)
    two = SimWorld(seed=42, batches=120, speed=0, start=T0)
    assert one.state() == two.state()
    assert one.list_files() == two.list_files()
    later = SimWorld(seed=42, batches=120, speed=0, start=T0 + 86_400 * 3)
    assert later.batch_ids() == one.batch_ids()
    assert [b["status"] for b in later.state()["batches"]] == [b["status"] for b in one.state()["batches"]]
    other = SimWorld(seed=43, batches=120, speed=0, start=T0)
    assert not set(other.batch_ids()) & set(one.batch_ids())
    assert all(len(i) == len("batch_") + 32 for i in one.batch_ids())
    file_one = _upload_and_create(one)
    assert file_one == _upload_and_create(two)


def _upload_and_create(world: SimWorld) -> tuple[str, str]:
    uploaded = world.create_file(filename="a.jsonl", purpose="batch", data=chat_lines(3).encode())
    batch = world.create_batch(
        {"input_file_id": uploaded["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    )
    return uploaded["id"], batch["id"]


def test_seeding_covers_every_status_endpoint_and_a_spread_of_time() -> None:
    world = SimWorld(seed=1, batches=300, speed=0, start=T0)
    batches = world.state()["batches"]
    assert len(batches) == 300
    assert {b["status"] for b in batches} == set(ALLOWED_MOVES)
    assert {b["endpoint"] for b in batches} >= {
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/completions",
        "/v1/moderations",
    }
    assert len({b["model"] for b in batches if b["model"]}) >= 6
    with_metadata = [b for b in batches if b["metadata"]]
    assert len(with_metadata) > 0.7 * len(batches)
    assert all({"project", "owner", "run"} <= set(b["metadata"]) for b in with_metadata)
    created = [b["created_at"] for b in batches]
    assert max(created) - min(created) > 7 * 86_400 and max(created) <= T0
    live = [b for b in batches if b["status"] in ("validating", "in_progress", "finalizing", "cancelling")]
    assert len(live) > 0.2 * len(batches)
    # Live batches move: within ten simulated minutes, many have visibly progressed.
    before = {b["id"]: b for b in live}
    world.advance(600)
    moved = [
        b
        for b in world.state()["batches"]
        if b["id"] in before
        and (
            b["status"] != before[b["id"]]["status"]
            or b["request_counts"] != before[b["id"]]["request_counts"]
        )
    ]
    assert len(moved) > 0.5 * len(live)
    assert all(world.get_file(b["input_file_id"])["purpose"] == "batch" for b in batches[:50])
    failures = [
        b["request_counts"]["failed"] / b["request_counts"]["total"]
        for b in batches
        if b["status"] == "completed"
    ]
    assert 0.0 < sum(failures) / len(failures) < 0.05


def test_ten_thousand_seeded_batches_page_newest_first_without_gaps_or_repeats() -> None:
    # How fast they are built and paged is a benchmark's business (bench_sync prints the simulator's
    # start-up time); a timed assertion here failed whenever the machine was busy.
    world = SimWorld(seed=1, batches=10_000, speed=0, start=T0)
    seen: list[dict] = []
    after = None
    while True:
        page = world.list_batches(limit=100, after=after)
        seen.extend(page["data"])
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert len(seen) == 10_000
    assert len({batch["id"] for batch in seen}) == 10_000
    created = [batch["created_at"] for batch in seen]
    assert created == sorted(created, reverse=True)


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    world = SimWorld(seed=8, batches=30, speed=0, start=T0, state_file=path)
    uploaded = world.create_file(filename="a.jsonl", purpose="batch", data=chat_lines(50).encode())
    batch = world.create_batch(
        {"input_file_id": uploaded["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    )
    world.advance(world.plan(batch["id"])["in_progress_at"] + 30 - world.now())
    world.cancel_batch(batch["id"])
    live = next(b for b in world.state()["batches"] if b["status"] == "in_progress")
    world.cancel_batch(live["id"])
    world.delete_file(uploaded["id"])
    world.advance(3600)

    again = SimWorld.load(path, speed=0)
    assert again.state() == world.state()
    assert again.list_files() == world.list_files()
    assert again.get_batch(batch["id"])["status"] == "cancelled"
    assert again.get_batch(live["id"])["status"] == "cancelled"
    again.advance(10)
    assert again.now() == world.now() + 10


# --- timestamps on the wall clock --------------------------------------------------------------

FILE_TIMES = ("created_at", "expires_at")
BATCH_TIMES = ("created_at", "expires_at", *TIMESTAMPS)
# The times each status path sets, in the order they happen (equal is fine after rounding).
PHASE_ORDERS = (
    ("created_at", "in_progress_at", "finalizing_at", "completed_at"),
    ("created_at", "failed_at"),
    ("created_at", "in_progress_at", "expired_at"),
    ("created_at", "expires_at"),
    ("created_at", "in_progress_at", "cancelling_at", "cancelled_at"),
    ("created_at", "cancelling_at", "cancelled_at"),
)


class FakeTime:
    """Stands in for the `time` module inside the simulator's clock and world: a wall clock tests move.

    With the wall clock still, a fast simulated clock moves only when a test advances it, so a
    world with and one without wall-clock timestamps can be compared at the same instant.
    """

    strftime = staticmethod(time.strftime)
    gmtime = staticmethod(time.gmtime)

    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.elapsed = 0.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.elapsed

    def pass_seconds(self, seconds: float) -> None:
        self.wall += seconds
        self.elapsed += seconds


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    from simulator import clock, state

    fake = FakeTime(T0)
    monkeypatch.setattr(clock, "time", fake)
    monkeypatch.setattr(state, "time", fake)
    return fake


def _on_wall(t: int | None, origin: int, speed: float) -> int | None:
    """The mapping the option promises: origin + (t - origin) / speed, to the nearest second."""
    return None if t is None else math.floor(origin + (t - origin) / speed + 0.5)


def _assert_mapped(
    shown: dict[str, Any], simulated: dict[str, Any], names: tuple[str, ...], speed: float
) -> None:
    for name in names:
        assert shown[name] == _on_wall(simulated[name], T0, speed), (name, shown, simulated)
    rest = {k: v for k, v in shown.items() if k not in names}
    assert rest == {k: v for k, v in simulated.items() if k not in names}


def _assert_in_order(batch: dict[str, Any]) -> None:
    for order in PHASE_ORDERS:
        times = [batch[name] for name in order if batch[name] is not None]
        assert times == sorted(times), (batch["id"], batch["status"], order, times)
    if batch["expired_at"] is not None:
        assert batch["expired_at"] == batch["expires_at"]


def test_wall_clock_timestamps_map_every_time_the_api_sends(wall: FakeTime) -> None:
    speed = 60.0
    shown = SimWorld(seed=3, batches=150, speed=speed, wall_clock_timestamps=True)
    plain = SimWorld(seed=3, batches=150, speed=speed)
    assert shown.origin == plain.origin == T0
    uploaded = {}
    for world in (shown, plain):
        file = world.create_file(filename="a.jsonl", purpose="batch", data=chat_lines(40).encode())
        batch = world.create_batch(
            {"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        )
        uploaded[world] = (file["id"], batch["id"])
    assert uploaded[shown] == uploaded[plain]
    statuses: set[str] = set()
    for step in range(12):
        state, simulated = shown.state(), plain.state()
        assert state["sim_now"] == simulated["now"] == shown.now()
        assert state["now"] == _on_wall(simulated["now"], T0, speed)
        assert state["wall_clock_timestamps"] and not simulated["wall_clock_timestamps"]
        assert len(state["batches"]) == len(simulated["batches"]) == 151
        for batch, original in zip(state["batches"], simulated["batches"], strict=True):
            statuses.add(batch["status"])
            _assert_mapped(batch, original, BATCH_TIMES, speed)
            _assert_in_order(batch)
            for name in ("created_at", *TIMESTAMPS):
                assert batch[name] is None or batch[name] <= state["now"]
        # The seeded past is compressed into the recent past, before the origin.
        if step == 0:
            created = [b["created_at"] for b in state["batches"][1:]]
            assert max(created) <= T0 and min(created) >= T0 - 16 * 86_400 / speed
        files, plain_files = shown.list_files(), plain.list_files()
        assert [f["id"] for f in files["data"]] == [f["id"] for f in plain_files["data"]]
        for file, original in zip(files["data"], plain_files["data"], strict=True):
            _assert_mapped(file, original, FILE_TIMES, speed)
            assert shown.get_file(file["id"]) == file
        for batch in state["batches"][:40]:
            assert shown.get_batch(batch["id"]) == batch
        shown.advance(2 * 3600)
        plain.advance(2 * 3600)
    assert statuses == set(ALLOWED_MOVES)
    # The 24 h window shows as 24 / speed hours.
    ours = shown.get_batch(uploaded[shown][1])
    assert ours["expires_at"] - ours["created_at"] == 86_400 / speed
    assert ours["status"] == "completed"


def test_wall_clock_timestamps_also_apply_to_times_inside_result_files(wall: FakeTime) -> None:
    speed = 60.0
    shown = SimWorld(seed=4, batches=60, speed=speed, wall_clock_timestamps=True)
    plain = SimWorld(seed=4, batches=60, speed=speed)
    completed = [
        b
        for b in plain.state()["batches"]
        if b["status"] == "completed" and b["output_file_id"] and b["request_counts"]["total"] <= 2_000
    ]
    checked = 0
    for batch in completed[:5]:
        presented = shown.get_batch(batch["id"])
        size, chunks = shown.open_file(batch["output_file_id"])
        data = b"".join(chunks)
        assert len(data) == size == plain.get_file(batch["output_file_id"])["bytes"]
        _, plain_chunks = plain.open_file(batch["output_file_id"])
        lines = [json.loads(line) for line in data.splitlines()]
        originals = [json.loads(line) for line in b"".join(plain_chunks).splitlines()]
        for line, original in zip(lines, originals, strict=True):
            body, plain_body = line["response"]["body"], original["response"]["body"]
            for name in ("created", "created_at"):
                if name in body:
                    assert body[name] == _on_wall(plain_body[name], T0, speed)
                    assert presented["in_progress_at"] <= body[name] <= presented["finalizing_at"]
                    checked += 1
    assert checked > 0


@pytest.mark.parametrize("speed", [0.0, 1.0])
def test_wall_clock_timestamps_change_nothing_at_speed_0_or_1(wall: FakeTime, speed: float) -> None:
    shown = SimWorld(seed=5, batches=80, speed=speed, start=T0, wall_clock_timestamps=True)
    plain = SimWorld(seed=5, batches=80, speed=speed, start=T0)
    for _ in range(3):
        state, simulated = shown.state(), plain.state()
        assert state.pop("wall_clock_timestamps") and not simulated.pop("wall_clock_timestamps")
        assert state == simulated
        assert shown.list_files() == plain.list_files()
        shown.advance(3 * 3600)
        plain.advance(3 * 3600)


def test_without_the_option_nothing_is_mapped(wall: FakeTime) -> None:
    world = SimWorld(seed=5, batches=80, speed=60)
    assert not world.wall_clock_timestamps
    world.advance(3600)
    state = world.state()
    assert state["now"] == state["sim_now"] == world.now() == T0 + 3600
    for batch in state["batches"]:
        plan = world.plan(batch["id"])
        assert batch["created_at"] == plan["created_at"]
        assert batch["expires_at"] == plan["expires_at"] == plan["created_at"] + 86_400
        if batch["completed_at"] is not None:
            assert batch["completed_at"] == plan["completed_at"]


def test_wall_clock_timestamps_over_http_match_the_state_and_advance_stays_simulated(
    wall: FakeTime,
) -> None:
    speed = 60.0
    running = Sim(SimWorld(seed=6, batches=130, speed=speed, wall_clock_timestamps=True))
    try:
        created = running.create(running.upload(chat_lines(20))["id"])
        assert created["created_at"] == T0
        assert running.now() == T0  # /_sim/advance answers in simulated seconds
        plan = running.plan(created["id"])
        assert plan["created_at"] == T0 and plan["expires_at"] == T0 + 86_400
        running.advance_to(plan["completed_at"])
        assert running.now() == plan["completed_at"]
        done = running.batch(created["id"])
        assert done["status"] == "completed"
        assert done["completed_at"] == _on_wall(plan["completed_at"], T0, speed)
        assert done["in_progress_at"] == _on_wall(plan["in_progress_at"], T0, speed)
        state = running.control.get("/_sim/state").json()
        assert state["sim_now"] == plan["completed_at"]
        assert state["now"] == _on_wall(plan["completed_at"], T0, speed)
        listed: list[dict[str, Any]] = []
        after = None
        while True:
            page = running.api.get(
                "/batches", params={"limit": 100, **({"after": after} if after else {})}
            ).json()
            listed.extend(page["data"])
            if not page["has_more"]:
                break
            after = page["last_id"]
        assert listed == state["batches"]  # field for field
        lines = running.content(done["output_file_id"])
        assert {line["response"]["body"]["created"] for line in lines} <= set(
            range(done["in_progress_at"], done["finalizing_at"] + 1)
        )
    finally:
        running.close()


def test_wall_clock_timestamps_stay_behind_the_real_clock() -> None:
    world = SimWorld(seed=1, batches=150, speed=60, wall_clock_timestamps=True)
    time.sleep(0.3)  # 18 simulated seconds
    file = world.create_file(filename="a.jsonl", purpose="batch", data=chat_lines(5).encode())
    batch = world.create_batch(
        {"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    )
    real = time.time()
    assert abs(file["created_at"] - real) <= 2 and abs(batch["created_at"] - real) <= 2
    assert world.now() - real > 10  # the simulated clock itself is well ahead
    state = world.state()
    assert abs(state["now"] - real) <= 2
    for item in state["batches"]:
        for name in ("created_at", *TIMESTAMPS):
            assert item[name] is None or item[name] <= real + 2
        assert item["expires_at"] - item["created_at"] == 86_400 // 60


def test_wall_clock_timestamps_survive_a_restart(wall: FakeTime, tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    world = SimWorld(seed=8, batches=60, speed=60, state_file=path, wall_clock_timestamps=True)
    wall.pass_seconds(600)  # ten wall minutes: ten simulated hours
    before = world.state()
    assert before["sim_now"] == T0 + 36_000 and before["now"] == T0 + 600
    world.save()
    wall.pass_seconds(3600)  # the simulator is down for an hour
    again = SimWorld.load(path, speed=60, wall_clock_timestamps=True)
    after = again.state()
    assert after["sim_now"] == T0 + 36_000  # the simulated clock resumes where it stopped
    assert after["now"] == T0 + 600 + 3600  # and is shown at the real time again
    later = 0
    for old, new in zip(before["batches"], after["batches"], strict=True):
        # What the API has shown keeps its value ...
        for name in ("created_at", *TIMESTAMPS):
            if old[name] is not None:
                assert new[name] == old[name], (name, old, new)
        # ... except a 24 h window still open: the hour the simulator was down is not in it.
        if new["expires_at"] != old["expires_at"]:
            assert old["expires_at"] > before["now"] and new["expires_at"] == old["expires_at"] + 3600
            later += 1
        _assert_in_order(new)
    assert later > 0
    wall.pass_seconds(60)
    assert again.state()["now"] == T0 + 600 + 3600 + 60
    # A restart at another speed keeps what was shown and maps what comes next at that speed.
    again.save()
    shown = again.state()
    third = SimWorld.load(path, speed=30, wall_clock_timestamps=True)
    assert third.state()["now"] == shown["now"]
    for old, new in zip(shown["batches"], third.state()["batches"], strict=True):
        assert {k: v for k, v in new.items() if k != "expires_at"} == {
            k: v for k, v in old.items() if k != "expires_at"
        }
    wall.pass_seconds(60)
    assert third.state()["now"] == shown["now"] + 60 and third.now() == shown["sim_now"] + 30 * 60
    # The option can be turned off again: the simulated times come back.
    plain = SimWorld.load(path, speed=30)
    assert plain.state()["now"] == plain.now() == T0 + 36_000 + 3600
