"""The Standard Webhooks signature (https://www.standardwebhooks.com), used both ways: OpenAI signs the
webhooks it sends us with it, and we sign the notifications our generic webhook channel sends.

The `standardwebhooks` library signs and verifies, with its fixed tolerance of five minutes either way
for the webhook-timestamp. This module turns our secrets into its keys and keeps from it the inputs it
does not refuse cleanly (it raises ValueError, a 500, on some malformed headers and bodies).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# The library's fixed tolerance for the webhook-timestamp (either way): a delivery older than this is
# refused whatever its signature, so a receipt of it is needed no longer than that (housekeeping).
REPLAY_TOLERANCE = timedelta(minutes=5)
SECRET_PREFIX = "whsec_"

# What an HMAC-SHA256 signature looks like: "v1," and the base64 of 32 bytes. The library splits every
# candidate at "," into exactly two parts and base64-decodes the second, raising ValueError on any other
# shape; a candidate of another shape can never match, so it is dropped before the library sees it.
_SIGNATURE = re.compile(r"v1,[A-Za-z0-9+/]{43}=")


class InvalidSignature(Exception):
    """The delivery cannot be shown to come from the holder of the secret. The message is for logs
    of our own; the sender is never told which check failed."""


def secret_key(secret: str) -> bytes:
    """The HMAC key: the base64 after "whsec_", as Standard Webhooks defines it; any other secret is
    taken as it is, so that a channel may use a plain shared string. (Given a string, the library would
    base64-decode it whatever it is, leniently: a plain string would become another key, or none.)"""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if key:
            return key
    return secret.encode()


def headers_for(secret: str, message_id: str, now: datetime, body: bytes) -> dict[str, str]:
    """The headers that sign `body` (UTF-8, as JSON is) with a non-empty secret, at `now` (aware)."""
    # The library reads the datetime as UTC whatever its zone: hand it one in UTC.
    moment = now.astimezone(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret_key(secret)).sign(message_id, moment, body.decode()),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    """Returns the webhook-id of a genuine, fresh delivery; raises InvalidSignature otherwise.
    `headers` must look names up case-insensitively (Django's request.headers does)."""
    if not secret:
        raise InvalidSignature("no secret configured")
    message_id = headers.get("webhook-id", "")
    raw_timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not message_id or not raw_timestamp or not signatures:
        raise InvalidSignature("missing webhook headers")
    # Unix seconds in ASCII digits, as Standard Webhooks sends them. The library's float() would also
    # take "1e9", " 12", "1_000" or "١٢", and then sign another number than the one sent.
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit() and len(raw_timestamp) <= 12):
        raise InvalidSignature("timestamp is not a number")
    candidates = [candidate for candidate in signatures.split() if _SIGNATURE.fullmatch(candidate)]
    if not candidates:
        raise InvalidSignature("no matching signature")
    given = {
        "webhook-id": message_id,
        "webhook-timestamp": raw_timestamp,
        "webhook-signature": " ".join(candidates),
    }
    try:
        Webhook(secret_key(secret)).verify(body, given, json_parse=False)
    except WebhookVerificationError as error:
        raise InvalidSignature(str(error)) from None
    except UnicodeDecodeError:  # the library decodes the body as UTF-8 before it signs it
        raise InvalidSignature("body is not UTF-8") from None
    return message_id
