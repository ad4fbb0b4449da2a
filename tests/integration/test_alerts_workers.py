"""Notifications sent by real Celery workers racing each other through a real Redis."""

import base64
import secrets
import time
from collections import Counter

from cryptography.fernet import Fernet
from django.utils import timezone

from alerts import tasks
from alerts.models import Channel, Delivery
from batches.models import BatchStatusChange
from tests.support.factories import make_batch
from tests.support.receivers import Receiver


def test_two_workers_send_every_event_exactly_once_per_channel(start_worker, transactional_db, settings):
    # Channels' URLs and secrets are stored encrypted: the workers decrypt them with the same key.
    key = settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    hook, slack = Receiver(delay=0.05), Receiver(delay=0.05)
    try:
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        Channel.objects.create(kind="webhook", url=hook.url, secret=secret)
        Channel.objects.create(kind="slack", url=slack.url)
        now = timezone.now()
        outcomes = ("completed", "failed", "expired", "cancelled")
        for index in range(12):
            status = outcomes[index % 4]
            batch = make_batch(status=status)
            BatchStatusChange.objects.create(
                batch=batch, old_status="in_progress", new_status=status, observed_at=now, api_timestamp=now
            )
        workers = [start_worker(DASHBOARD_ENCRYPTION_KEY=key), start_worker(DASHBOARD_ENCRYPTION_KEY=key)]
        # Several ticks at once, as beat would send them to a busy pool: both workers scan and send.
        for _ in range(6):
            tasks.process_alerts.delay()

        hook.wait_for(12)
        slack.wait_for(12)
        deadline = time.monotonic() + 20
        while Delivery.objects.exclude(state="sent").exists():
            assert time.monotonic() < deadline, "deliveries left unsent"
            time.sleep(0.1)
        time.sleep(0.5)  # room for a duplicate to arrive, were there one

        assert len(hook.requests) == 12 and len(slack.requests) == 12
        ids = Counter(request.headers["webhook-id"] for request in hook.requests)
        assert len(ids) == 12
        assert Counter(request.json()["batch"]["id"] for request in hook.requests).most_common(1)[0][1] == 1
        assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}
        assert Delivery.objects.count() == 24
        # Both workers ran ticks, so each delivery really was up for grabs by two senders.
        assert all("alerts.tasks.process_alerts" in worker.output() for worker in workers)
    finally:
        hook.close()
        slack.close()
