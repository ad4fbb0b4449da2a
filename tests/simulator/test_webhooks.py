"""The simulator's OpenAI-style webhooks (simulator/webhooks.py): one signed event per batch that
finishes, verified here with the `standardwebhooks` library, as the dashboard verifies OpenAI's."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys

import pytest
from standardwebhooks.webhooks import Webhook

from simulator.state import SimWorld
from simulator.webhooks import WebhookSender
from tests.conftest import REPO
from tests.support.receivers import Receiver

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
FINAL = ("completed", "failed", "expired", "cancelled")


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def test_each_batch_that_finishes_is_announced_once_with_a_valid_signature(receiver):
    world = SimWorld(seed=5, batches=60, speed=0, start=1_760_000_000)
    sender = WebhookSender(world, receiver.url + "/hook", SECRET)
    before = {b["id"]: b["status"] for b in world.state()["batches"]}
    world.advance(6 * 3600)
    sender.tick()
    after = {b["id"]: b["status"] for b in world.state()["batches"]}
    ended = {i: s for i, s in after.items() if s in FINAL and before[i] not in FINAL}
    assert ended, "the seed should finish some batches within six hours"
    received = receiver.wait_for(len(ended))
    events = {}
    for request in received:
        Webhook(SECRET).verify(request.body, request.headers)  # raises on a bad signature
        event = request.json()
        assert event["object"] == "event" and event["id"] == request.headers["webhook-id"]
        assert event["id"].startswith("evt_") and isinstance(event["created_at"], int)
        events[event["data"]["id"]] = event["type"]
    assert events == {i: f"batch.{s}" for i, s in ended.items()}
    assert sender.tick() == 0  # nothing new: nothing sent again
    assert len(receiver.requests) == len(ended)


def test_a_cancelled_batch_is_announced_as_cancelled(receiver):
    world = SimWorld(seed=5, batches=60, speed=0, start=1_760_000_000)
    running = next(b for b in world.state()["batches"] if b["status"] == "in_progress")
    sender = WebhookSender(world, receiver.url, SECRET)
    world.cancel_batch(running["id"])
    world.advance(3600)
    sender.tick()
    types = {r.json()["data"]["id"]: r.json()["type"] for r in receiver.wait_for(1)}
    assert types[running["id"]] == "batch.cancelled"


def test_a_refused_delivery_is_not_retried_and_a_failing_one_is(receiver):
    world = SimWorld(seed=5, batches=60, speed=0, start=1_760_000_000)
    sender = WebhookSender(world, receiver.url, SECRET)
    receiver.statuses = [503, 200]
    world.advance(6 * 3600)
    count = sender.tick()
    assert sender.delivered == count and sender.failed == 0
    assert len(receiver.requests) == count + 1  # the 503 was tried again
    receiver.statuses = [400]
    world.advance(6 * 3600)
    more = sender.tick()
    assert sender.failed == more and len(receiver.requests) == count + 1 + more


def test_a_secret_not_in_the_whsec_form_is_refused():
    world = SimWorld(seed=5, batches=1, speed=0)
    with pytest.raises(ValueError, match="whsec_"):
        WebhookSender(world, "http://127.0.0.1:9/", "plain-secret")


def test_the_command_refuses_webhooks_without_a_secret_in_the_environment():
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_WEBHOOK_SECRET"}
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--webhook-url", "http://127.0.0.1:9/"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "OPENAI_WEBHOOK_SECRET" in done.stderr and done.stdout == ""
