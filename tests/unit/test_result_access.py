"""Who reads the content of results: operators by default, viewers only with
DASHBOARD_VIEWERS_SEE_RESULTS=1; counts, sizes and error codes are open to every signed-in user."""

from __future__ import annotations

import json

import httpx
import pytest

from batches import sync
from batches.models import Batch
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db
KEY = "sk-test-simulator"


@pytest.fixture
def simulator(start_simulator):
    return start_simulator(batches=40, seed=7)


@pytest.fixture
def batch(simulator_connection) -> Batch:
    """A finished batch with input, output and error files, failed lines of both shapes included."""
    sync.full_sync(simulator_connection, complete=True)
    found = (
        Batch.objects.filter(connection=simulator_connection, status="expired", endpoint="/v1/responses")
        .exclude(error_file_id="")
        .exclude(output_file_id="")
        .order_by("-created_at")
        .first()
    )
    assert found is not None, "the seeded world has no expired batch with output and error files"
    return found


@pytest.fixture
def error_lines(simulator, batch) -> list[dict]:
    with httpx.Client(base_url=simulator.base_url, headers={"Authorization": f"Bearer {KEY}"}) as api:
        content = api.get(f"/files/{batch.error_file_id}/content").content
    return [json.loads(line) for line in content.splitlines() if line.strip()]


def failure_messages(lines: list[dict]) -> set[str]:
    messages = set()
    for item in lines:
        error = item["error"] if item.get("response") is None else item["response"]["body"]["error"]
        messages.add(error["message"])
    return messages


def test_a_viewer_gets_a_clear_403_on_every_preview(client, batch):
    client.force_login(make_user("vic", "viewer"))
    for kind in ("input", "output", "error"):
        response = client.get(f"/batches/{batch.pk}/files/{kind}/")
        assert response.status_code == 403, kind
        body = response.content.decode()
        assert "operator role" in body and "<html" in body
    fragment = client.get(
        f"/batches/{batch.pk}/files/output/?page=2", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="file-preview"
    )
    assert fragment.status_code == 403
    text = fragment.content.decode()
    assert text.lstrip().startswith('<div id="file-preview">') and "operator role" in text
    assert "<html" not in text


def test_a_viewer_sees_sizes_and_failures_by_code_but_no_custom_ids_or_messages(client, batch, error_lines):
    client.force_login(make_user("vic", "viewer"))
    response = client.get(f"/batches/{batch.pk}/results/")
    assert response.status_code == 200
    body = response.content.decode()
    # The files, with their sizes, are listed; the preview links are not.
    files = response.context["files"]
    assert [f.kind for f in files] == ["input", "output", "error"] and all(f.bytes for f in files)
    assert f"/batches/{batch.pk}/files/output/" not in body
    # Failures are grouped by code with their counts...
    triage = response.context["triage"]
    codes: dict[str, int] = {}
    for item in error_lines:
        error = item["error"] if item.get("response") is None else item["response"]["body"]["error"]
        code = error["code"] or error["type"]
        codes[code] = codes.get(code, 0) + 1
    assert {g.code: g.count for g in triage.groups} == codes
    assert triage.failures == len(error_lines)
    for code in codes:
        assert code in body
    # ... without a single custom_id or message from the results.
    assert all(not g.examples and not g.message for g in triage.groups)
    for item in error_lines:
        assert item["custom_id"] not in body
    for message in failure_messages(error_lines):
        assert message not in body
    assert "operator role" in body


def test_with_the_setting_a_viewer_sees_previews_and_triage_but_still_cannot_download(
    client, settings, batch, error_lines
):
    settings.DASHBOARD_VIEWERS_SEE_RESULTS = True
    client.force_login(make_user("vic", "viewer"))
    preview = client.get(f"/batches/{batch.pk}/files/error/?size=10")
    assert preview.status_code == 200
    assert [line.custom_id for line in preview.context["preview"].lines] == [
        item["custom_id"] for item in error_lines[:10]
    ]
    assert "Download" not in preview.content.decode()
    section = client.get(f"/batches/{batch.pk}/results/").content.decode()
    assert error_lines[0]["custom_id"] in section
    assert any(message in section for message in failure_messages(error_lines))
    assert f"/batches/{batch.pk}/files/output/" in section and "/download/" not in section
    assert client.get(f"/batches/{batch.pk}/files/output/download/").status_code == 403


def test_an_operator_sees_previews_triage_examples_and_downloads(client, batch, error_lines):
    client.force_login(make_user("olga", "operator"))
    for kind in ("input", "output", "error"):
        assert client.get(f"/batches/{batch.pk}/files/{kind}/").status_code == 200
    response = client.get(f"/batches/{batch.pk}/results/")
    body = response.content.decode()
    assert error_lines[0]["custom_id"] in body
    assert any(g.examples and g.message for g in response.context["triage"].groups)
    assert f"/batches/{batch.pk}/files/error/download/" in body
    download = client.get(f"/batches/{batch.pk}/files/error/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content).count(b"\n") == len(error_lines)
