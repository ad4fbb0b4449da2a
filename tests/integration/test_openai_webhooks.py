"""The OpenAI webhook endpoint with a real worker: a genuine delivery refreshes its batch at once."""

import time

from batches.models import Batch
from tests.support.factories import make_connection
from tests.unit.test_openai_webhooks import SECRET, event, post, signed


def test_a_genuine_delivery_refreshes_the_batch_at_once(
    client, settings, start_simulator, start_worker, monkeypatch, db
):
    settings.OPENAI_WEBHOOK_SECRET = SECRET
    simulator = start_simulator(batches=12, seed=3)
    monkeypatch.setenv("SIMULATOR_TEST_API_KEY", "sk-test")
    connection = make_connection("hooked", base_url=simulator.base_url, api_key_env="SIMULATOR_TEST_API_KEY")
    start_worker()
    finished = next(
        b for b in simulator.batches() if b["status"] in ("completed", "failed", "expired", "cancelled")
    )
    body = event(finished["id"], kind=f"batch.{finished['status']}")

    assert post(client, "hooked", body, signed(body, webhook_id="msg_live")).status_code == 200

    deadline = time.monotonic() + 20
    while not Batch.objects.filter(connection=connection, batch_id=finished["id"]).exists():
        assert time.monotonic() < deadline, "the worker did not refresh the batch"
        time.sleep(0.1)
    assert Batch.objects.get(batch_id=finished["id"]).raw == finished
