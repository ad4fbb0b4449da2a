"""What the simulator sends conforms to OpenAI's published contract and to the official SDK.

1. Every kind of response validates against the schemas of the OpenAPI document in
   tests/contract/ (JSON Schema 2020-12, which OpenAPI 3.1 schemas are).
2. The official `openai` SDK, pointed at the simulator, uploads, creates, lists with
   auto-pagination, retrieves, cancels and downloads without noticing it is not OpenAI.

That it serves as a process (`manage.py simulate_api`, `python -m simulator`) is in test_package.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from simulator.server import SimServer, start_in_thread, stop
from simulator.state import SimWorld

REPO = Path(__file__).resolve().parents[2]
# A copy of OpenAI's published contract kept in the repository (tests/contract/README.md names the
# source), so that a fresh clone runs these tests with nothing beside it.
CONTRACT = REPO / "tests" / "contract" / "openai-batches-files.openapi.yaml"
DOCUMENT_URI = "urn:openai-openapi"
T0 = 1_760_000_000


# Fields the OpenAPI document types without null, though tests/contract/README.md says the live API may
# send null for them (and it does: an unfinished batch has no completed_at). The README names
# every `*_at` timestamp, output_file_id, error_file_id, errors, model, usage and metadata; only
# those are relaxed here, to "the documented schema, or null". Everything else stays as strict
# as the document.
NULLABLE_BY_README: dict[str, tuple[str, ...]] = {
    "Batch": (
        "created_at",
        "in_progress_at",
        "expires_at",
        "finalizing_at",
        "completed_at",
        "failed_at",
        "expired_at",
        "cancelling_at",
        "cancelled_at",
        "output_file_id",
        "error_file_id",
        "errors",
        "model",
        "usage",
        "metadata",
    ),
    "OpenAIFile": ("created_at", "expires_at"),
}

# The document defines no schema for error bodies; tests/contract/README.md describes them as
# {"error": {"message", "type", "param", "code"}}, and that is what this encodes (a message and a
# type are always text; param and code may be null).
ERROR_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


@cache
def registry() -> Registry:
    document = yaml.safe_load(CONTRACT.read_text())
    schemas = document["components"]["schemas"]
    relaxed = copy.deepcopy(document)
    for name, fields in NULLABLE_BY_README.items():
        properties = relaxed["components"]["schemas"][name]["properties"]
        for field in fields:
            assert field in schemas[name]["properties"], f"{name}.{field} is not in the contract"
            properties[field] = {"anyOf": [properties[field], {"type": "null"}]}
    resource = Resource.from_contents(relaxed, default_specification=DRAFT202012)
    return Registry().with_resource(DOCUMENT_URI, resource)


def validate(instance: Any, schema_name: str) -> None:
    if schema_name == "Error":
        schema: dict[str, Any] = ERROR_BODY_SCHEMA
    else:
        schema = {"$ref": f"{DOCUMENT_URI}#/components/schemas/{schema_name}"}
    validator = Draft202012Validator(schema, registry=registry())
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{schema_name} at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in errors[:10]
    )


class Running:
    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.server: SimServer
        self.server, self.base_url = start_in_thread(world)
        self.root = self.base_url.removesuffix("/v1")
        self.http = httpx.Client(base_url=self.base_url, headers={"Authorization": "Bearer sk-test"})

    def advance(self, seconds: int) -> None:
        httpx.post(self.root + "/_sim/advance", json={"seconds": seconds}).raise_for_status()

    def plan(self, batch_id: str) -> dict[str, Any]:
        return httpx.get(f"{self.root}/_sim/plan/{batch_id}").json()

    def close(self) -> None:
        self.http.close()
        stop(self.server)


@pytest.fixture(scope="module")
def seeded() -> Iterator[Running]:
    running = Running(SimWorld(seed=1, batches=300, speed=0, start=T0))
    yield running
    running.close()


@pytest.fixture
def fresh() -> Iterator[Running]:
    running = Running(SimWorld(seed=1, batches=300, speed=0, start=T0))
    yield running
    running.close()


def jsonl(count: int, endpoint: str, model: str) -> bytes:
    bodies = {
        "/v1/chat/completions": lambda n: {"messages": [{"role": "user", "content": f"Say {n}"}]},
        "/v1/responses": lambda n: {"input": f"Say {n}"},
        "/v1/embeddings": lambda n: {"input": f"document {n}", "dimensions": 8},
        "/v1/completions": lambda n: {"prompt": f"Say {n}"},
        "/v1/moderations": lambda n: {"input": f"text {n}"},
    }
    return "".join(
        json.dumps(
            {
                "custom_id": f"row-{n}",
                "method": "POST",
                "url": endpoint,
                "body": {"model": model, **bodies[endpoint](n)},
            }
        )
        + "\n"
        for n in range(count)
    ).encode()


# --- 1. the contract ---------------------------------------------------------------------------


def test_the_contract_is_found_and_loads() -> None:
    schemas = yaml.safe_load(CONTRACT.read_text())["components"]["schemas"]
    assert {"Batch", "ListBatchesResponse", "OpenAIFile", "ListFilesResponse"} <= set(schemas)


def test_a_batch_in_every_status_matches_the_batch_schema(seeded: Running) -> None:
    pages = []
    response = seeded.http.get("/batches", params={"limit": 100}).json()
    pages.append(response)
    while response["has_more"]:
        response = seeded.http.get("/batches", params={"limit": 100, "after": response["last_id"]}).json()
        pages.append(response)
    seen: dict[str, dict[str, Any]] = {}
    for page in pages:
        validate(page, "ListBatchesResponse")
        for batch in page["data"]:
            seen.setdefault(batch["status"], batch)
            validate(batch, "Batch")
    assert set(seen) == {
        "validating",
        "failed",
        "in_progress",
        "finalizing",
        "completed",
        "expired",
        "cancelling",
        "cancelled",
    }
    for batch in seen.values():
        single = seeded.http.get(f"/batches/{batch['id']}").json()
        validate(single, "Batch")
        # Every field of the schema is present, with null where there is nothing to say.
        schema = yaml.safe_load(CONTRACT.read_text())["components"]["schemas"]["Batch"]
        assert set(schema["properties"]) <= set(single)
    assert seen["failed"]["errors"]["data"] and seen["completed"]["usage"] is not None


def test_files_and_file_lists_match_their_schemas(seeded: Running) -> None:
    uploaded = seeded.http.post(
        "/files",
        files={"file": ("x.jsonl", jsonl(2, "/v1/embeddings", "text-embedding-3-small"))},
        data={"purpose": "batch"},
    ).json()
    validate(uploaded, "OpenAIFile")
    notes = seeded.http.post("/files", files={"file": ("n.txt", b"hi")}, data={"purpose": "user_data"}).json()
    validate(notes, "OpenAIFile")
    listing = seeded.http.get("/files", params={"limit": 50}).json()
    validate(listing, "ListFilesResponse")
    assert {"batch", "batch_output", "user_data"} <= {
        f["purpose"] for f in seeded.http.get("/files").json()["data"]
    }
    for item in listing["data"]:
        validate(seeded.http.get(f"/files/{item['id']}").json(), "OpenAIFile")
    validate(seeded.http.delete(f"/files/{notes['id']}").json(), "DeleteFileResponse")


def test_an_empty_list_page_is_the_documented_shape_with_null_cursors(seeded: Running) -> None:
    oldest = seeded.world.batch_ids()[-1]
    page = seeded.http.get("/batches", params={"after": oldest}).json()
    assert page == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    # The document types first_id/last_id as strings, but an empty page has no ids to give: the
    # simulator sends null for them (as the live API does), and only that is relaxed here.
    relaxed = {k: v for k, v in page.items() if v is not None}
    validate(relaxed, "ListBatchesResponse")


def test_error_bodies_have_the_documented_shape(seeded: Running) -> None:
    responses = [
        seeded.http.get("/batches/batch_missing"),
        seeded.http.get("/files/file-missing"),
        seeded.http.get("/batches", params={"limit": 0}),
        seeded.http.post("/batches", json={}),
        seeded.http.post("/batches", content=b"nope"),
        seeded.http.get("/unknown"),
        httpx.get(seeded.base_url + "/batches"),
    ]
    completed = next(b for b in seeded.world.state()["batches"] if b["status"] == "completed")
    responses.append(seeded.http.post(f"/batches/{completed['id']}/cancel"))
    assert {r.status_code for r in responses} == {400, 401, 404}
    for response in responses:
        validate(response.json(), "Error")


# --- 2. the official SDK -----------------------------------------------------------------------


def test_the_official_sdk_works_end_to_end(fresh: Running) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=fresh.base_url)
    uploaded = client.files.create(
        file=("rows.jsonl", jsonl(120, "/v1/responses", "gpt-4.1-mini")), purpose="batch"
    )
    assert uploaded.purpose == "batch" and uploaded.status == "processed"
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/responses",
        completion_window="24h",
        metadata={"suite": "conformance"},
    )
    assert batch.status == "validating" and batch.metadata == {"suite": "conformance"}
    other = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
    )

    listed = list(client.batches.list(limit=100))
    ids = [b.id for b in listed]
    assert len(ids) == 302 and len(set(ids)) == 302
    assert ids[:2] == [other.id, batch.id]
    created = [b.created_at for b in listed]
    assert created == sorted(created, reverse=True)
    assert len(list(client.batches.list())) == 302  # the default page size, 20, pages too

    assert client.batches.retrieve(batch.id).id == batch.id
    cancelling = client.batches.cancel(other.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at == T0
    assert client.files.content(uploaded.id).read() == jsonl(120, "/v1/responses", "gpt-4.1-mini")

    plan = fresh.plan(batch.id)
    fresh.advance(plan["in_progress_at"] - T0)
    running = client.batches.retrieve(batch.id)
    assert running.status == "in_progress" and running.in_progress_at == plan["in_progress_at"]
    fresh.advance(plan["completed_at"] - plan["in_progress_at"])
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.completed_at == plan["completed_at"]
    assert done.usage is not None and done.usage.total_tokens > 0
    assert done.request_counts is not None and done.request_counts.total == 120
    lines = [json.loads(x) for x in client.files.content(done.output_file_id).read().splitlines()]
    assert len(lines) == done.request_counts.completed
    assert {line["custom_id"] for line in lines} <= {f"row-{n}" for n in range(120)}
    assert all(line["response"]["body"]["object"] == "response" for line in lines)
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"

    fresh.advance(600)  # the longest a cancellation takes by default
    assert client.batches.retrieve(other.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.cancel(batch.id)
    assert "Cannot cancel a batch with status 'completed'." in str(refused.value)
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_does_not_exist")

    file_ids = {f.id for f in client.files.list(purpose="batch_output")}
    assert done.output_file_id in file_ids
    assert client.files.delete(uploaded.id).deleted
    client.close()


def test_the_sdk_retries_through_injected_faults(fresh: Running) -> None:
    httpx.post(
        fresh.root + "/_sim/faults", json={"rate_429": 0.3, "retry_after_seconds": 0.01, "seed": 3}
    ).raise_for_status()
    client = openai.OpenAI(api_key="sk-test", base_url=fresh.base_url, max_retries=8)
    ids = [b.id for b in client.batches.list(limit=100)]
    assert len(ids) == 300 and len(set(ids)) == 300
    client.close()


def test_every_endpoint_produces_sdk_readable_results(fresh: Running) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=fresh.base_url)
    made = []
    for endpoint, model in (
        ("/v1/chat/completions", "o4-mini"),
        ("/v1/embeddings", "text-embedding-3-small"),
        ("/v1/completions", "gpt-3.5-turbo-instruct"),
        ("/v1/moderations", "omni-moderation-latest"),
    ):
        uploaded = client.files.create(file=("in.jsonl", jsonl(30, endpoint, model)), purpose="batch")
        made.append(
            client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")
        )
    fresh.advance(3 * 86_400)
    for batch in made:
        done = client.batches.retrieve(batch.id)
        assert done.status in ("completed", "expired"), done
        validate(fresh.http.get(f"/batches/{batch.id}").json(), "Batch")
        for line in client.files.content(done.output_file_id).read().splitlines():
            body = json.loads(line)["response"]["body"]
            assert body.get("usage") is not None or batch.endpoint == "/v1/moderations"
    client.close()
