"""Cheap hostile requests get a 4xx, never a 5xx."""

from __future__ import annotations

import base64
import json

import pytest

from tests.factories import make_batch, make_user

pytestmark = pytest.mark.django_db


def _cursor(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.fixture
def viewer(client):
    client.force_login(make_user("hostile-viewer"))
    return client


def test_a_webhook_timestamp_of_400_digits_is_refused_with_a_400(client, settings):
    settings.OPENAI_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"hostile-requests-webhook-secret").decode()
    response = client.post(
        "/webhooks/openai/default/",
        b"{}",
        content_type="application/json",
        HTTP_WEBHOOK_ID="msg_1",
        HTTP_WEBHOOK_TIMESTAMP="9" * 400,
        HTTP_WEBHOOK_SIGNATURE="v1,AAAA",
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "values",
    [
        ["9999-12-31T23:59:59-23:59", 5],
        ["0001-01-01T00:00:00+23:59", 5],
        ["0001-01-01T00:00:00", 5],
        ["9999-12-31T23:59:59", 5],
        ["2025-01-01T00:00:00+00:00", 10**30],
        ["2025-01-01T00:00:00+00:00", -(10**30)],
    ],
)
def test_a_list_cursor_holding_an_out_of_range_value_is_not_a_500(viewer, values):
    make_batch(status="in_progress")
    response = viewer.get("/", {"cursor": _cursor(values)})
    assert response.status_code < 500


@pytest.mark.parametrize("sort", ["progress", "-progress", "status"])
def test_a_list_cursor_holding_an_out_of_range_number_is_not_a_500(viewer, sort):
    make_batch(status="in_progress")
    for values in (["in_progress", 1e308, 10**30], ["x", float("inf"), 2**63], [1, "nan", -(2**63) - 1]):
        cursor = _cursor(values if sort == "status" else values[1:])
        assert viewer.get("/", {"cursor": cursor, "sort": sort}).status_code < 500


@pytest.mark.parametrize("pk", [2**63, 2**64 + 1, 10**30])
def test_the_row_poll_with_an_id_beyond_64_bits_is_a_404(viewer, pk):
    response = viewer.get(f"/batches/{pk}/row/", HTTP_HX_REQUEST="true")
    assert response.status_code == 404


def test_a_list_cursor_holding_an_infinite_id_is_not_a_500(viewer):
    make_batch(status="in_progress")
    cursor = base64.urlsafe_b64encode(b'["2025-01-01T00:00:00+00:00", Infinity]').decode().rstrip("=")
    assert viewer.get("/", {"cursor": cursor}).status_code < 500
