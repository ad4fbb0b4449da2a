"""The OpenAI webhook endpoint: Standard Webhooks signatures, a tolerance of five minutes, no repeats."""

import base64
import hashlib
import hmac
import json
import secrets
import time

import pytest

from alerts.models import WebhookReceipt
from tests.support.factories import make_connection

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed(body: bytes, *, webhook_id: str, timestamp: int | None = None, secret: str = SECRET) -> dict:
    """Headers as OpenAI sends them, signed here independently of the code under test."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "HTTP_WEBHOOK_ID": webhook_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(timestamp),
        "HTTP_WEBHOOK_SIGNATURE": "v1," + base64.b64encode(digest).decode(),
    }


def event(batch_id: str, kind: str = "batch.completed") -> bytes:
    return json.dumps(
        {
            "id": "evt_" + secrets.token_hex(8),
            "object": "event",
            "type": kind,
            "created_at": int(time.time()),
            "data": {"id": batch_id},
        }
    ).encode()


def post(client, ref: str, body: bytes, headers: dict):
    return client.post(f"/webhooks/openai/{ref}/", body, content_type="application/json", **headers)


@pytest.fixture
def webhook_secret(settings):
    settings.OPENAI_WEBHOOK_SECRET = SECRET
    return SECRET


@pytest.fixture
def queue(redis_settings):
    """A real broker for the refresh the endpoint queues; what no worker takes is purged afterwards."""
    from dashboard.celery import app

    yield redis_settings
    app.control.purge()


@pytest.mark.django_db
def test_without_a_secret_configured_the_endpoint_does_not_exist(client, settings):
    settings.OPENAI_WEBHOOK_SECRET = ""
    make_connection("team-a")
    body = event("batch_x")
    assert post(client, "team-a", body, signed(body, webhook_id="msg_1")).status_code == 404


@pytest.mark.django_db
def test_a_forged_delivery_is_refused_without_saying_why(client, webhook_secret, caplog):
    make_connection("team-a")
    body = event("batch_x")
    forged = signed(
        body, webhook_id="msg_forged", secret="whsec_" + base64.b64encode(b"not the key").decode()
    )
    tampered = signed(body, webhook_id="msg_tampered")
    for headers, payload in ((forged, body), (tampered, body.replace(b"batch_x", b"batch_y")), ({}, body)):
        response = post(client, "team-a", payload, headers)
        assert response.status_code == 400
        assert response.content == b"invalid webhook"
    assert not WebhookReceipt.objects.exists()
    assert SECRET not in caplog.text


@pytest.mark.django_db
def test_an_old_or_future_timestamp_is_refused_even_when_signed_correctly(client, webhook_secret):
    make_connection("team-a")
    body = event("batch_x")
    now = int(time.time())
    for timestamp in (now - 301, now + 301):
        headers = signed(body, webhook_id=f"msg_{timestamp}", timestamp=timestamp)
        assert post(client, "team-a", body, headers).status_code == 400
    assert not WebhookReceipt.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_replayed_delivery_is_acknowledged_and_ignored(client, webhook_secret, queue):
    connection = make_connection("team-a")
    body = event("batch_replayed")
    headers = signed(body, webhook_id="msg_once")
    first = post(client, "team-a", body, headers)
    again = post(client, str(connection.pk), body, headers)  # by id this time: the same endpoint
    assert (first.status_code, first.content) == (200, b"ok")
    assert (again.status_code, again.content) == (200, b"duplicate")
    (receipt,) = WebhookReceipt.objects.all()
    assert (receipt.event_type, receipt.batch_id, receipt.connection) == (
        "batch.completed",
        "batch_replayed",
        connection,
    )


@pytest.mark.django_db
def test_a_genuine_delivery_for_no_connection_of_ours_is_a_404(client, webhook_secret):
    body = event("batch_x")
    assert post(client, "nobody", body, signed(body, webhook_id="msg_lost")).status_code == 404


@pytest.mark.django_db
def test_other_event_types_are_acknowledged_without_a_refresh(webhook_secret):
    from django.test import Client

    make_connection("team-a")
    body = event("resp_123", kind="response.completed")
    # OpenAI sends no CSRF token and no session; no broker is needed either, as nothing is queued.
    client = Client(enforce_csrf_checks=True)
    assert post(client, "team-a", body, signed(body, webhook_id="msg_other")).status_code == 200
    assert WebhookReceipt.objects.get().batch_id == ""


def test_any_of_several_signatures_may_match_during_a_key_rotation():
    from alerts import signing

    body, now = b'{"type":"batch.failed"}', int(time.time())
    good = signed(body, webhook_id="msg_rotated", timestamp=now)
    headers = {
        "webhook-id": "msg_rotated",
        "webhook-timestamp": str(now),
        "webhook-signature": "v1,bm90IGl0 " + good["HTTP_WEBHOOK_SIGNATURE"],
    }
    assert signing.verify(SECRET, headers, body) == "msg_rotated"
    headers["webhook-signature"] = "v1,bm90IGl0"
    with pytest.raises(signing.InvalidSignature):
        signing.verify(SECRET, headers, body)


def test_signature_headers_the_library_cannot_parse_are_refused_or_skipped_not_a_500():
    # standardwebhooks raises ValueError on a candidate without exactly one comma or with bad base64,
    # and on a body that is not UTF-8; alerts.signing keeps those from it.
    from alerts import signing

    body, now = b'{"type":"batch.failed"}', int(time.time())
    good = signed(body, webhook_id="msg_guarded", timestamp=now)["HTTP_WEBHOOK_SIGNATURE"]
    headers = {"webhook-id": "msg_guarded", "webhook-timestamp": str(now)}
    for junk in ("v1", "v1,a,b", "v1,abc", "v1,", ",", "v2,x"):
        with pytest.raises(signing.InvalidSignature):
            signing.verify(SECRET, headers | {"webhook-signature": junk}, body)
        both = f"{junk}  {good}\t{junk}"
        assert signing.verify(SECRET, headers | {"webhook-signature": both}, body) == "msg_guarded"
    with pytest.raises(signing.InvalidSignature):
        signing.verify(SECRET, headers | {"webhook-signature": good}, b"\xff\xfe" + body)
    for stamp in ("1e9", f" {now}", f"{now}.0", "9" * 400, "١٢"):
        with pytest.raises(signing.InvalidSignature):
            signing.verify(SECRET, headers | {"webhook-timestamp": stamp, "webhook-signature": good}, body)
