"""Each delivery succeeds or fails alone: one bad channel never holds up the others (issue 13, hole 5)."""

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.utils import timezone

from accounts.roles import ADMIN
from alerts import services
from alerts.models import Channel, Delivery
from batches.models import BatchStatusChange
from tests.support.factories import make_batch, make_user

pytestmark = pytest.mark.django_db

# Django's URLField takes it; httpx refuses its host name (U+2603 is not allowed in IDNA 2008), so it
# fails before any name is looked up or any connection is made.
SNOWMAN_URL = "http://☃.com/"


@pytest.fixture(autouse=True)
def alert_settings(settings):
    settings.ALERTS_RETRY_BACKOFF = 30.0
    settings.ALERTS_MAX_ATTEMPTS = 3
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()


def finish_a_batch(batch_id: str = "batch_isolated") -> None:
    batch = make_batch(batch_id=batch_id, status="completed")
    now = timezone.now()
    BatchStatusChange.objects.create(
        batch=batch, old_status="in_progress", new_status="completed", observed_at=now, api_timestamp=now
    )


def test_a_url_httpx_refuses_fails_its_own_delivery_and_the_others_are_sent(hook):
    # Created first, so its delivery is the first one due. Stored as a row saved before URLs were
    # checked with the sender's parser would be: the model itself takes any string.
    bad = Channel.objects.create(name="snowman", kind="slack", url=SNOWMAN_URL)
    good = Channel.objects.create(name="good", kind="slack", url=f"{hook.url}/services/T0/B0/token")
    finish_a_batch()
    start = timezone.now()

    result = services.process(start)

    assert len(hook.wait_for(1)) == 1
    assert Delivery.objects.get(channel=good).state == "sent"
    failed = Delivery.objects.get(channel=bad)
    assert (failed.state, failed.attempts, failed.claimed_at) == ("pending", 1, None)
    assert failed.next_attempt_at == start + timedelta(seconds=30)
    assert "InvalidURL" in failed.last_error and "☃" not in failed.last_error
    assert (result.sent, result.retrying) == (1, 1)


def test_a_bad_channel_is_given_up_after_the_last_attempt_not_left_sending(hook):
    bad = Channel.objects.create(kind="slack", url=SNOWMAN_URL)
    finish_a_batch()
    start = timezone.now()
    for seconds in (0, 31, 92):
        services.process(start + timedelta(seconds=seconds))

    delivery = Delivery.objects.get(channel=bad)
    assert (delivery.state, delivery.attempts, delivery.claimed_at) == ("failed", 3, None)
    assert "InvalidURL" in delivery.last_error
    services.process(start + timedelta(hours=1))
    assert Delivery.objects.get(channel=bad).attempts == 3


def test_an_unexpected_error_while_sending_fails_only_that_delivery(hook):
    # A payload written by an older version, missing what the Slack message needs: a KeyError deep
    # in the formatting, not a SendError.
    channel = Channel.objects.create(kind="slack", url=f"{hook.url}/services/x")
    now = timezone.now()
    broken = Delivery.objects.create(
        channel=channel,
        batch=make_batch(),
        event="completed",
        payload={"unexpected": True},
        next_attempt_at=now - timedelta(seconds=1),
        created_at=now,
    )
    finish_a_batch("batch_fine")

    services.process(now)

    assert len(hook.wait_for(1)) == 1
    assert hook.requests[0].json()["text"].startswith("Batch batch_fine")
    broken.refresh_from_db()
    assert (broken.state, broken.attempts, broken.claimed_at) == ("pending", 1, None)
    assert broken.last_error.startswith("unexpected error: KeyError")


def test_a_delivery_whose_worker_keeps_dying_is_given_up_after_the_last_attempt():
    channel = Channel.objects.create(kind="email", email="ops@example.com")
    now = timezone.now()
    delivery = Delivery.objects.create(
        channel=channel,
        batch=make_batch(),
        event="completed",
        payload={},
        state="sending",
        claimed_at=now - services.SENDING_LEASE - timedelta(seconds=1),
        attempts=3,
        next_attempt_at=now,
        created_at=now,
    )

    result = services.send_due(now)

    delivery.refresh_from_db()
    assert (delivery.state, delivery.claimed_at, result.failed) == ("failed", None, 1)
    assert "stopped" in delivery.last_error


def test_the_form_refuses_a_url_the_sender_could_not_send_to(client):
    # An admin's team channel: the internal-address check does not apply, so nothing is resolved.
    client.force_login(make_user("ada", ADMIN))
    response = client.post(
        "/alerts/channels/", {"kind": "slack", "url": SNOWMAN_URL, "team": "1", "enabled": "on"}
    )
    assert response.status_code == 200
    assert "Enter a URL the dashboard can send to" in response.content.decode()
    assert not Channel.objects.exists()


def test_a_stored_bad_url_does_not_break_the_alerts_pages(client):
    for url in (SNOWMAN_URL, "http://[::1/hook", "https://exa mple.com/x"):
        Channel.objects.create(kind="slack", url=url)
    channel = Channel.objects.first()
    Delivery.objects.create(
        channel=channel,
        batch=make_batch(),
        event="completed",
        state="failed",
        attempts=3,
        last_error="x",
        next_attempt_at=timezone.now(),
        created_at=timezone.now(),
    )
    client.force_login(User.objects.create_superuser("root", password="pw-root-1"))
    for page in (
        "/alerts/channels/",
        "/alerts/failures/",
        "/admin/alerts/channel/",
        f"/admin/alerts/channel/{channel.pk}/change/",
        "/admin/alerts/delivery/",
    ):
        assert client.get(page).status_code == 200, page
