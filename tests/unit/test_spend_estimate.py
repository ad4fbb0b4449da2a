"""The new-batch page's cost estimate: requests counted and a cost range, before anything is uploaded."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from batches.models import Batch
from tests.support.factories import make_connection, make_user

pytestmark = pytest.mark.django_db


def _line(number: int, *, chars: int, max_tokens: int | None, model: str = "gpt-4o") -> dict:
    body: dict = {"model": model, "messages": [{"role": "user", "content": "x" * chars}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return {"custom_id": f"r{number}", "method": "POST", "url": "/v1/chat/completions", "body": body}


def _post(client: Client, connection, lines: list[dict], *, htmx: bool = False):
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    data = {
        "connection": connection.pk,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": "",
        "estimate": "1",
        "file": SimpleUploadedFile("requests.jsonl", content, content_type="application/jsonl"),
    }
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "estimate"} if htmx else {}
    return client.post("/batches/new/", data, **headers)


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(make_user("olga", "operator"))
    return client


@pytest.fixture
def connection():
    # Nothing listens there: an upload would fail, so a page that shows the estimate made no call.
    return make_connection("team-a", base_url="http://127.0.0.1:9/v1")


def test_it_counts_the_requests_and_gives_a_cost_range_without_uploading(operator, connection):
    # 10 requests of 39,996 + 4 ("user") characters: 400,000 characters, 80,000 to 133,334 tokens.
    lines = [_line(n, chars=39_996, max_tokens=100) for n in range(10)]
    response = _post(operator, connection, lines)
    page = response.content.decode()
    assert response.status_code == 200
    assert "<strong>10</strong> requests" in page
    assert "about 80,000 to 133,334 input tokens (estimated from the text" in page
    assert "at most 1,000 output tokens" in page
    # gpt-4o batch: $1.25 / M input, $5 / M output.
    # low: 80,000 x 1.25 = $0.10; high: 133,334 x 1.25 + 1,000 x 5 = $0.171668 -> $0.1717
    assert "Estimated cost: <strong>$0.1000</strong> to <strong>$0.1717</strong>" in page
    assert "This is an estimate" in page and "Nothing was uploaded." in page
    assert not Batch.objects.exists()


def test_requests_without_an_output_limit_leave_the_range_open(operator, connection):
    lines = [_line(0, chars=396, max_tokens=None), _line(1, chars=396, max_tokens=50)]
    page = _post(operator, connection, lines, htmx=True).content.decode()
    assert page.lstrip().startswith('<section id="estimate"')
    assert "<strong>or more</strong>: 1 request sets no max_tokens" in page


def test_an_unpriced_model_gets_no_estimate_but_its_requests_are_counted(operator, connection):
    page = _post(operator, connection, [_line(0, chars=10, max_tokens=5, model="mystery")]).content.decode()
    assert "<strong>1</strong> request to" in page and "No price for mystery" in page


def test_a_viewer_may_not_ask_for_an_estimate(connection):
    client = Client()
    client.force_login(make_user("vic", "viewer"))
    assert _post(client, connection, [_line(0, chars=10, max_tokens=5)]).status_code == 403
