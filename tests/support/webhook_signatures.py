"""Standard Webhooks headers signed here, independently of alerts.signing: over any bytes and any
integer timestamp, so that tests can send what the library's signer refuses to make."""

from __future__ import annotations

import base64
import hashlib
import hmac


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """For a "whsec_" secret, as OpenAI's are."""
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
