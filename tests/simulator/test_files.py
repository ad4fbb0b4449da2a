"""The simulator's Files API: uploads checked like the real API's, content round-trips, and seeded files
whose sizes and contents agree with what they claim."""

from __future__ import annotations

import json

import pytest

from simulator.endpoints import parse_multipart
from simulator.sources import ProfileKey, SeededRequests
from simulator.state import SimWorld
from simulator.validation import validate_input
from tests.simulator.support import T0, Sim, assert_error, chat_lines


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
    for seconds in ("²", "9" * 5000):  # digits int() refuses: a 400 naming the field, not a 500
        fields = {"purpose": "batch", "expires_after[anchor]": "created_at"}
        fields["expires_after[seconds]"] = seconds
        response = sim.api.post("/files", files={"file": ("a.jsonl", b"{}\n")}, data=fields)
        assert assert_error(response, 400)["param"] == "expires_after.seconds"


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
