"""The Standard Webhooks signature (https://www.standardwebhooks.com), used both ways: OpenAI signs the
webhooks it sends us with it, and we sign the notifications our generic webhook channel sends.

The signed content is "{webhook-id}.{webhook-timestamp}.{body}"; the signature is the base64 of its
HMAC-SHA256, sent as "v1,<signature>" (several may be sent, separated by spaces, during a key rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"


class InvalidSignature(Exception):
    """The delivery cannot be shown to come from the holder of the secret. The message is for logs
    of our own; the sender is never told which check failed."""


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64 after "whsec_", as Standard Webhooks defines it; any other secret is
    taken as it is, so that a channel may use a plain shared string."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers_for(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Returns the webhook-id of a genuine, fresh delivery; raises InvalidSignature otherwise.
    `headers` must look names up case-insensitively (Django's request.headers does)."""
    if not secret:
        raise InvalidSignature("no secret configured")
    message_id = headers.get("webhook-id", "")
    raw_timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not message_id or not raw_timestamp or not signatures:
        raise InvalidSignature("missing webhook headers")
    # Unix seconds in ASCII digits, as Standard Webhooks sends them. int() would also take "1_000",
    # " 12" or "١٢", and a number of hundreds of digits overflowed the float comparison below (a 500).
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit() and len(raw_timestamp) <= 12):
        raise InvalidSignature("timestamp is not a number")
    timestamp = int(raw_timestamp)
    # Too old is a replay; too far ahead is a clock we cannot trust either.
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance")
    expected = sign(secret, message_id, timestamp, body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return message_id
    raise InvalidSignature("no matching signature")
