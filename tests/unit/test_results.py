"""Results pages against the simulator: previews, downloads, error triage, re-submit, create from upload."""

from __future__ import annotations

import json
import re
from collections import Counter

import httpx
import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile

from batches import connections, sync
from batches.models import Batch
from batches.results import files, submit, validation

pytestmark = pytest.mark.django_db
KEY = "sk-test-simulator"


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def simulator(start_simulator):
    # Forty seeded batches cover every status, both failure shapes and failed validations.
    return start_simulator(batches=40, seed=7)


@pytest.fixture
def synced(simulator_connection):
    sync.full_sync(simulator_connection, complete=True)
    return simulator_connection


@pytest.fixture
def operator(client):
    user = User.objects.create_user("olga", password="pw-olga-1")
    user.groups.add(Group.objects.get_or_create(name="operator")[0])
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("vic", password="pw-vic-1")
    client.force_login(user)
    return user


@pytest.fixture
def api(simulator):
    """The simulator's own HTTP API, read without the dashboard's client."""
    with httpx.Client(base_url=simulator.base_url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        yield http


def file_lines(api: httpx.Client, file_id: str) -> list[dict]:
    response = api.get(f"/files/{file_id}/content")
    response.raise_for_status()
    return [json.loads(line) for line in response.content.splitlines() if line.strip()]


def file_count(api: httpx.Client) -> int:
    return len(api.get("/files", params={"limit": 10_000}).json()["data"])


def pick(connection, **filters) -> Batch:
    batch = Batch.objects.filter(connection=connection, **filters).order_by("-created_at").first()
    assert batch is not None, f"the seeded world has no batch with {filters}"
    return batch


def jsonl(lines: list) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )


def chat_line(custom_id: str, *, model: str = "gpt-4o-mini", broken: bool = False) -> dict:
    body: dict = {"model": model}
    if not broken:
        body["messages"] = [{"role": "user", "content": f"Say hello to {custom_id}"}]
    # A body without messages is accepted by validation and then fails when it runs (400).
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def run_uploaded(connection, simulator, lines: list[dict], *, cancel_midway: bool, metadata=None) -> Batch:
    """Create a batch from `lines` at the API, let the simulated clock run it (cancelling it halfway
    if asked), and mirror it as the sync would."""
    with connections.client_for(connection) as client:
        uploaded = client.upload_file(filename="requests.jsonl", content=jsonl(lines))
        created = client.create_batch(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", metadata=metadata
        )
        plan = simulator.control.get(f"/_sim/plan/{created.id}").json()
        now = simulator.state()["sim_now"]
        if cancel_midway:
            simulator.advance((plan["in_progress_at"] + plan["done_at"]) / 2 - now)
            client.cancel_batch(created.id)
            simulator.advance(900)
        else:
            simulator.advance(plan["final_at"] - now + 1)
    return sync.refresh_batch(connection, created.id)


# --------------------------------------------------------------------------- preview


def test_it_pages_through_an_output_file_as_the_api_serves_it(client, operator, synced, api):
    batch = pick(synced, status="completed", total_requests__gt=100, endpoint="/v1/chat/completions")
    expected = file_lines(api, batch.output_file_id)

    first = client.get(f"/batches/{batch.pk}/files/output/?size=10")
    assert first.status_code == 200
    shown = [line.custom_id for line in first.context["preview"].lines]
    assert shown == [item["custom_id"] for item in expected[:10]]
    assert first.context["file"].bytes > 0
    body = first.content.decode()
    assert 'rel="next"' in body and "Page 1" in body
    assert first.context["preview"].lines[0].status_code == 200

    third = client.get(
        f"/batches/{batch.pk}/files/output/?page=3&size=10",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="file-preview",
    )
    fragment = third.content.decode()
    assert fragment.lstrip().startswith('<div id="file-preview">')
    assert re.findall(r'<td class="num">(\d+)</td>', fragment) == [str(n) for n in range(21, 31)]
    assert re.findall(r'<td class="mono">([^<]+)</td>\s*<td class="mono">200', fragment) == [
        item["custom_id"] for item in expected[20:30]
    ]
    assert 'rel="prev"' in fragment


def test_the_last_page_knows_the_line_count_and_a_page_past_it_says_so(client, operator, synced, api):
    batch = pick(synced, status="completed", total_requests__range=(10, 60))
    count = len(file_lines(api, batch.output_file_id))
    last = client.get(f"/batches/{batch.pk}/files/output/?size=10&page={(count + 9) // 10}")
    assert last.context["preview"].line_count == count
    assert not last.context["preview"].has_next
    beyond = client.get(f"/batches/{batch.pk}/files/output/?size=10&page=999")
    assert beyond.status_code == 200
    assert f"This file has {count} lines" in beyond.content.decode()


def test_it_previews_input_lines_with_their_request_and_error_lines_with_their_failure(
    client, operator, synced, api
):
    batch = pick(synced, status="expired", endpoint="/v1/responses")
    inputs = client.get(f"/batches/{batch.pk}/files/input/?size=10").context["preview"].lines
    assert inputs[0].request == "POST /v1/responses"
    assert inputs[0].summary.startswith(file_lines(api, batch.input_file_id)[0]["body"]["model"])
    errors = client.get(f"/batches/{batch.pk}/files/error/?size=100&page=5").context["preview"].lines
    assert all(line.failed for line in errors)
    assert any(line.summary.startswith("batch_expired:") and line.status_code is None for line in errors)


@pytest.mark.parametrize(
    "query",
    [
        "page=abc",
        "page=-4",
        "page=0",
        "page=1e9",
        "page=" + "9" * 5000,
        "size=7",
        "size=x&page=%00",
        "page=2.5",
    ],
)
def test_garbage_page_numbers_are_not_a_500(client, operator, synced, query):
    batch = pick(synced, status="completed", total_requests__range=(10, 60))
    response = client.get(f"/batches/{batch.pk}/files/output/?{query}")
    assert response.status_code == 200


def test_an_unknown_kind_a_missing_file_or_an_unknown_batch_is_a_404(client, operator, synced):
    done = pick(synced, status="completed", total_requests__range=(10, 60))
    running = pick(synced, status="in_progress")
    assert client.get(f"/batches/{done.pk}/files/secrets/").status_code == 404
    assert client.get(f"/batches/{running.pk}/files/output/").status_code == 404
    assert client.get("/batches/987654/files/input/").status_code == 404
    assert client.get("/batches/987654/results/").status_code == 404


def test_an_expired_file_says_results_are_no_longer_available(client, operator, synced, simulator):
    batch = pick(synced, status="completed", total_requests__range=(10, 60))
    simulator.advance(31 * 86_400)  # result files live 30 days
    preview = client.get(f"/batches/{batch.pk}/files/output/")
    assert preview.status_code == 200
    assert "Results no longer available" in preview.content.decode()
    section = client.get(f"/batches/{batch.pk}/results/", HTTP_HX_REQUEST="true")
    assert section.status_code == 200
    kinds = [kind for kind in files.FILE_KINDS if files.file_id_of(batch, kind)]
    assert len(kinds) >= 2
    assert section.content.decode().count("Results no longer available") == len(kinds)
    download = client.get(f"/batches/{batch.pk}/files/output/download/")
    assert download.status_code == 410
    assert "Results no longer available" in download.content.decode()


def test_an_api_failure_is_a_plain_message_not_a_500(client, operator, synced, simulator, settings):
    settings.OPENAI_MAX_RETRIES = 0
    batch = pick(synced, status="completed", failed_requests__gt=0, total_requests__range=(10, 60))
    simulator.set_faults(rate_5xx=1.0, rate_5xx_after_effect=0.0)
    preview = client.get(f"/batches/{batch.pk}/files/output/")
    assert preview.status_code == 200
    assert "The API answered with an error" in preview.content.decode()
    section = client.get(f"/batches/{batch.pk}/results/")
    assert section.status_code == 200
    assert "The API answered with an error" in section.content.decode()
    assert client.get(f"/batches/{batch.pk}/files/output/download/").status_code == 502
    resubmit = client.post(f"/batches/{batch.pk}/resubmit/")
    assert resubmit.status_code == 200
    assert "Nothing was re-submitted" in resubmit.content.decode()


# --------------------------------------------------------------------------- download


def test_an_operator_downloads_the_file_streamed_through_the_dashboard(client, operator, synced, api):
    batch = pick(synced, status="completed", total_requests__gt=1000)
    expected = api.get(f"/files/{batch.output_file_id}/content").content
    response = client.get(f"/batches/{batch.pk}/files/output/download/")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Length"] == str(len(expected))
    assert response["Content-Disposition"] == f'attachment; filename="{batch.batch_id}_output.jsonl"'
    assert response["Cache-Control"] == "private, no-store"
    chunks = list(response.streaming_content)
    assert len(chunks) > 1  # it arrived in pieces, not as one buffered body
    assert b"".join(chunks) == expected


def test_a_viewer_may_not_preview_download_resubmit_or_create(client, viewer, synced, simulator, api):
    batch = pick(synced, status="expired", endpoint="/v1/responses")
    files_before, batches_before = file_count(api), simulator.count()
    assert client.get(f"/batches/{batch.pk}/files/output/").status_code == 403
    assert client.get(f"/batches/{batch.pk}/files/output/download/").status_code == 403
    assert client.post(f"/batches/{batch.pk}/resubmit/").status_code == 403
    assert client.get("/batches/new/").status_code == 403
    upload = SimpleUploadedFile("a.jsonl", jsonl([chat_line("a")]))
    forged = client.post(
        "/batches/new/",
        {
            "connection": synced.pk,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "file": upload,
        },
    )
    assert forged.status_code == 403
    assert (file_count(api), simulator.count()) == (files_before, batches_before)
    section = client.get(f"/batches/{batch.pk}/results/", HTTP_HX_REQUEST="true").content.decode()
    assert "Download" not in section and "Re-submit" not in section
    assert f"/batches/{batch.pk}/files/output/" not in section and "Output" in section


def test_anonymous_visitors_are_sent_to_the_login(client, synced):
    batch = pick(synced, status="completed", total_requests__range=(10, 60))
    for url in (
        f"/batches/{batch.pk}/files/output/download/",
        "/batches/new/",
        f"/batches/{batch.pk}/results/",
    ):
        assert client.get(url)["Location"].startswith("/login/")


# --------------------------------------------------------------------------- triage


def test_it_groups_failures_by_code_and_message_from_both_line_shapes(client, operator, synced, api):
    batch = pick(synced, status="expired", endpoint="/v1/responses")
    expected: Counter = Counter()
    ids: dict[tuple, list[str]] = {}
    for item in file_lines(api, batch.error_file_id):
        if item["response"] is None:
            key = (item["error"]["code"], item["error"]["message"])
        else:
            error = item["response"]["body"]["error"]
            key = (error["code"] or error["type"], error["message"])
        expected[key] += 1
        ids.setdefault(key, []).append(item["custom_id"])
    assert any(code == "batch_expired" for code, _ in expected) and len(expected) >= 2

    response = client.get(f"/batches/{batch.pk}/results/")
    triage = response.context["triage"]
    assert {(g.code, g.message): g.count for g in triage.groups} == dict(expected)
    assert [g.count for g in triage.groups] == sorted((g.count for g in triage.groups), reverse=True)
    for group in triage.groups:
        assert group.examples == ids[(group.code, group.message)][:5]
    assert triage.failures == sum(expected.values())
    assert "batch_expired" in response.content.decode()


def test_a_batch_that_failed_validation_is_triaged_from_its_own_errors(client, operator, synced):
    batch = pick(synced, status="failed", endpoint="/v1/responses")
    triage = client.get(f"/batches/{batch.pk}/results/").context["triage"]
    assert sum(g.count for g in triage.groups) == len(batch.errors)
    assert {g.source for g in triage.groups} == {"validation"}
    lines = {f"line {e['line']}" for e in batch.errors if e.get("line")}
    assert {example for g in triage.groups for example in g.examples} == lines


def test_an_active_batch_shows_only_its_input_file(client, operator, synced):
    running = pick(synced, status="in_progress")
    response = client.get(f"/batches/{running.pk}/results/")
    assert [f.kind for f in response.context["files"]] == ["input"]
    assert response.context["triage"] is None
    assert "Re-submit" not in response.content.decode()
    detail = client.get(f"/batches/{running.pk}/").content.decode()
    assert f'hx-get="/batches/{running.pk}/results/"' in detail


# --------------------------------------------------------------------------- re-submit


def test_resubmit_sends_exactly_the_requests_that_did_not_succeed(client, operator, synced, simulator, api):
    lines = [chat_line(f"req-{i:03d}", broken=i % 7 == 3) for i in range(120)]
    original = run_uploaded(synced, simulator, lines, cancel_midway=True, metadata={"project": "retry-test"})
    assert original.status == "cancelled"
    succeeded = {
        item["custom_id"]
        for item in file_lines(api, original.output_file_id)
        if item["response"]["status_code"] == 200
    }
    failed_or_never_ran = {item["custom_id"] for item in file_lines(api, original.error_file_id)}
    assert succeeded and failed_or_never_ran
    broken = {line["custom_id"] for line in lines if "messages" not in line["body"]}
    assert broken & failed_or_never_ran

    response = client.post(f"/batches/{original.pk}/resubmit/")
    retry = Batch.objects.get(connection=synced, metadata__retry_of=original.batch_id)
    assert response.status_code == 302
    assert response["Location"] == f"/batches/{retry.pk}/"

    resent = file_lines(api, retry.input_file_id)
    assert {item["custom_id"] for item in resent} == failed_or_never_ran
    assert {item["custom_id"] for item in resent} == {line["custom_id"] for line in lines} - succeeded
    assert resent == [line for line in lines if line["custom_id"] in failed_or_never_ran]  # as uploaded
    on_api = api.get(f"/batches/{retry.batch_id}").json()
    assert on_api["metadata"] == {"project": "retry-test", "retry_of": original.batch_id}
    assert on_api["endpoint"] == "/v1/chat/completions" and on_api["completion_window"] == "24h"

    # It shows at once, and the two link to each other.
    assert retry.batch_id in client.get("/").content.decode()
    there = client.get(f"/batches/{original.pk}/results/", HTTP_HX_REQUEST="true").content.decode()
    assert f'href="/batches/{retry.pk}/"' in there
    back = client.get(f"/batches/{retry.pk}/results/", HTTP_HX_REQUEST="true").content.decode()
    assert f'href="/batches/{original.pk}/"' in back and "Retry of" in back


def test_a_second_resubmit_must_be_confirmed(client, operator, synced, simulator):
    batch = pick(synced, status="completed", failed_requests__gt=0, total_requests__range=(10, 60))
    assert client.post(f"/batches/{batch.pk}/resubmit/", HTTP_HX_REQUEST="true")["HX-Redirect"]
    count = simulator.count()
    again = client.post(f"/batches/{batch.pk}/resubmit/", HTTP_HX_REQUEST="true")
    assert again.status_code == 200
    assert "already re-submitted" in again.content.decode()
    assert simulator.count() == count
    confirmed = client.post(f"/batches/{batch.pk}/resubmit/", {"again": "1"}, HTTP_HX_REQUEST="true")
    assert confirmed["HX-Redirect"]
    assert simulator.count() == count + 1


def test_a_batch_whose_every_request_succeeded_has_nothing_to_resubmit(client, operator, synced):
    batch = pick(synced, status="completed", failed_requests=0, total_requests__gt=0)
    page = client.get(f"/batches/{batch.pk}/results/").content.decode()
    assert "Re-submit failures" not in page
    assert "nothing to re-submit" in client.post(f"/batches/{batch.pk}/resubmit/").content.decode()


def test_retry_metadata_keeps_the_link_back_within_sixteen_keys():
    full = {f"k{i:02d}": str(i) for i in range(16)}
    metadata, dropped = submit.retry_metadata(full, "batch_x")
    assert len(metadata) == 16 and metadata["retry_of"] == "batch_x"
    assert dropped == ["k15"]
    chained, dropped = submit.retry_metadata({"a": "1", "retry_of": "batch_first"}, "batch_second")
    assert chained == {"a": "1", "retry_of": "batch_second"} and dropped == []


# --------------------------------------------------------------------------- create


def create(client, connection, content: bytes, **fields):
    data = {
        "connection": connection.pk,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": "",
        "file": SimpleUploadedFile("requests.jsonl", content, content_type="application/jsonl"),
        **fields,
    }
    return client.post("/batches/new/", data)


def test_it_creates_a_batch_from_a_valid_file_and_lists_it_at_once(client, operator, synced, simulator, api):
    content = jsonl([chat_line(f"item-{i}") for i in range(30)])
    response = create(client, synced, content, metadata="project=launch\nrun = first ")
    created = Batch.objects.get(connection=synced, metadata__created_by="olga")
    assert response.status_code == 302 and response["Location"] == f"/batches/{created.pk}/"
    assert created.metadata == {"project": "launch", "run": "first", "created_by": "olga"}
    assert created.status == "validating"
    assert api.get(f"/files/{created.input_file_id}/content").content == content
    assert "created from 30 requests" in client.get(response["Location"]).content.decode()
    assert created.batch_id in client.get("/").content.decode()


def test_an_invalid_file_lists_every_bad_line_and_uploads_nothing(client, operator, synced, simulator, api):
    files_before, batches_before = file_count(api), simulator.count()
    good = chat_line("fine-1")
    lines = [
        good,  # 1
        b"{not json",  # 2
        {**chat_line("x"), "custom_id": ""},  # 3
        {**chat_line("fine-1")},  # 4: duplicate of line 1
        {**chat_line("m"), "method": "GET"},  # 5
        {**chat_line("u"), "url": "/v1/embeddings"},  # 6
        {"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": "hello"},  # 7
        {"custom_id": "n", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": []}},  # 8
        chat_line("other-model", model="gpt-4.1"),  # 9
        b"",  # 10: an empty line
        b"[1, 2]",  # 11
        chat_line("fine-2"),  # 12
    ]
    response = create(client, synced, jsonl(lines))
    assert response.status_code == 200
    problems = response.context["outcome"].problems
    assert sorted({p.line for p in problems}) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    reasons = {p.line: p.reason for p in problems}
    assert "used again (first on line 1)" in reasons[4]
    assert "POST" in reasons[5] and "/v1/embeddings" in reasons[6] and "model" in reasons[8]
    body = response.content.decode()
    for line in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11):
        assert f"<strong>Line {line}</strong>" in body
    assert "nothing was uploaded" in body
    assert (file_count(api), simulator.count()) == (files_before, batches_before)
    assert not Batch.objects.filter(metadata__created_by="olga").exists()


def test_an_embeddings_file_may_hold_at_most_fifty_thousand_inputs(client, operator, synced, api):
    files_before = file_count(api)
    line = {"method": "POST", "url": "/v1/embeddings", "body": {"model": "text-embedding-3-small"}}
    lines = [
        {**line, "custom_id": f"e{i}", "body": {**line["body"], "input": ["a"] * 25_001}} for i in range(2)
    ]
    response = create(client, synced, jsonl(lines), endpoint="/v1/embeddings")
    assert "50,002 embedding inputs" in response.content.decode()
    assert file_count(api) == files_before


def test_a_file_over_the_line_and_size_limits_is_refused_before_upload():
    lines = jsonl([chat_line(f"c{i}") for i in range(validation.MAX_LINES + 1)])
    report = validation.validate_upload([lines], "/v1/chat/completions")
    assert [str(p) for p in report.problems] == [
        "The file holds 50,001 requests; a batch may hold at most 50,000."
    ]
    oversized = validation.validate_upload([b""], "/v1/chat/completions", size=validation.MAX_BYTES + 1)
    assert "at most 209,715,200" in str(oversized.problems[0])


def test_metadata_from_the_form_is_checked_against_the_api_limits(client, operator, synced, api):
    files_before = file_count(api)
    many = "\n".join(f"key{i}=v" for i in range(16))
    response = create(
        client, synced, jsonl([chat_line("a")]), metadata=f"{many}\ncreated_by=mallory\nbad line"
    )
    errors = " ".join(response.context["form"].errors["metadata"])
    assert "created_by is set by the dashboard" in errors
    assert "write key=value" in errors
    assert "At most 15 metadata keys" in errors
    assert file_count(api) == files_before


def test_the_create_form_offers_connections_and_endpoints(client, operator, synced):
    body = client.get("/batches/new/").content.decode()
    assert re.search(r'<option value="\d+"[^>]*>simulated</option>', body)
    assert "/v1/embeddings" in body and 'enctype="multipart/form-data"' in body


def test_the_new_batch_link_is_offered_to_operators_only(client, operator, viewer):
    client.force_login(operator)
    assert 'href="/batches/new/"' in client.get("/").content.decode()
    client.force_login(viewer)
    assert 'href="/batches/new/"' not in client.get("/").content.decode()
