"""OpenAI-style webhooks: when a batch finishes, a signed event is POSTed to a URL.

The events and their bodies are OpenAI's (`batch.completed`, `batch.failed`, `batch.expired`,
`batch.cancelled`; `{"id": "evt_...", "object": "event", "type": ..., "created_at": ..., "data":
{"id": "batch_..."}}`), signed with the Standard Webhooks scheme OpenAI uses: the headers
`webhook-id`, `webhook-timestamp` and `webhook-signature` ("v1," and the base64 of an HMAC-SHA256 of
`id.timestamp.body` under the base64 key after "whsec_"). Standard library only, like the rest of
the simulator.

A thread looks every `interval` wall seconds for batches whose simulated life ended since its last
look and delivers one event each, retrying a failed delivery a few times with backoff. Batches that had
already finished when it started get no event, as a real endpoint registered today gets none for
yesterday's batches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request

from simulator.state import SimWorld

EVENT_TYPES = {
    "completed": "batch.completed",
    "failed": "batch.failed",
    "expired": "batch.expired",
    "cancelled": "batch.cancelled",
}
SECRET_PREFIX = "whsec_"
ATTEMPTS = 4


def secret_key(secret: str) -> bytes:
    """The HMAC key of a "whsec_..." secret: the bytes its base64 stands for."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.startswith(SECRET_PREFIX) or not key:
        raise ValueError('a webhook secret is "whsec_" and base64, as OpenAI gives them')
    return key


def signed_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        "content-type": "application/json",
        "user-agent": "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)",
    }


def event_body(batch_id: str, status: str, created_at: int) -> tuple[str, bytes]:
    event_id = "evt_" + secrets.token_hex(12)
    event = {
        "id": event_id,
        "object": "event",
        "type": EVENT_TYPES[status],
        "created_at": created_at,
        "data": {"id": batch_id},
    }
    return event_id, json.dumps(event, separators=(",", ":")).encode()


class WebhookSender:
    """Delivers the webhooks of one world to one URL, from a daemon thread."""

    def __init__(
        self, world: SimWorld, url: str, secret: str, *, interval: float = 0.25, timeout: float = 5.0
    ) -> None:
        self.world = world
        self.url = url
        self.key = secret_key(secret)
        self.interval = interval
        self.timeout = timeout
        self.delivered = 0
        self.failed = 0
        self._stopping = threading.Event()
        self._last = world.now()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> WebhookSender:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=self.timeout + 1)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.tick()

    def tick(self) -> int:
        """Deliver the events of the batches that finished since the last tick; how many."""
        now = self.world.now()
        finished = self.world.finished_between(self._last, now)
        self._last = now
        for batch_id, status, at in finished:
            if status in EVENT_TYPES:
                self._deliver(*event_body(batch_id, status, at))
        return len(finished)

    def _deliver(self, event_id: str, body: bytes) -> None:
        for attempt in range(ATTEMPTS):
            headers = signed_headers(self.key, event_id, int(time.time()), body)
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                self.delivered += 1
                return
            except urllib.error.HTTPError as error:
                if error.code < 500 and error.code != 429:
                    break  # refused (a bad signature, no such connection): retrying will not help
            except OSError:
                pass
            if self._stopping.wait(0.5 * 2**attempt):
                break
        self.failed += 1
        sys.stderr.write(f"simulator: webhook {event_id} to {self.url} not delivered\n")
