"""Notifications through each channel, against real receivers on loopback."""

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group, User
from django.core import mail
from django.utils import timezone

from alerts import services
from alerts.models import Channel, Delivery, ScanCursor
from batches.models import BatchStatusChange
from tests.support.factories import make_batch, make_connection
from tests.support.receivers import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    started: list[Receiver] = []

    def start(*statuses: int) -> Receiver:
        receiver = Receiver(statuses or (200,))
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.close()


@pytest.fixture(autouse=True)
def alert_settings(settings):
    settings.ALERTS_RETRY_BACKOFF = 30.0
    settings.ALERTS_MAX_ATTEMPTS = 3
    settings.STALLED_AFTER_MINUTES = 30
    settings.DASHBOARD_URL = "https://batches.example.com"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Channels' URLs and secrets are stored encrypted with it.
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def finish(batch, status: str = "completed", *, old: str = "in_progress", ago: timedelta = timedelta()):
    """Record a status change the way the sync does."""
    now = timezone.now()
    batch.status = status
    batch.is_terminal = status in ("completed", "failed", "expired", "cancelled")
    batch.save()
    return BatchStatusChange.objects.create(
        batch=batch, old_status=old, new_status=status, observed_at=now - ago, api_timestamp=now - ago
    )


def test_a_completed_batch_is_posted_once_with_a_signature_the_receiver_can_verify(receiver):
    hook = receiver()
    secret = new_secret()
    Channel.objects.create(kind="webhook", url=f"{hook.url}/hooks/batches", secret=secret)
    batch = make_batch(batch_id="batch_signed")
    finish(batch)

    services.process()
    services.process()

    (request,) = hook.wait_for(1)
    assert request.path == "/hooks/batches"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = (
        f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    )
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"
    # Any Standard Webhooks verifier accepts it, for instance the OpenAI SDK's.
    from openai import OpenAI

    OpenAI(api_key="unused", webhook_secret=secret).webhooks.verify_signature(request.body, request.headers)
    body = request.json()
    assert body["type"] == "batch.completed"
    assert body["batch"]["id"] == "batch_signed"
    assert body["batch"]["request_counts"] == {"total": 100, "completed": 40, "failed": 2}
    assert body["url"] == f"https://batches.example.com/batches/{batch.pk}/"
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("sent", 1)
    assert request.headers["webhook-id"] == f"dlv_{delivery.pk}"


def test_slack_gets_one_line_of_text_with_its_markup_escaped(receiver):
    hook = receiver()
    Channel.objects.create(kind="slack", url=f"{hook.url}/services/T0/B0/token")
    batch = make_batch(make_connection("<!channel> & co"), batch_id="batch_slack")
    finish(batch, "failed")

    services.process()

    text = hook.wait_for(1)[0].json()["text"]
    assert text.startswith("Batch batch_slack (&lt;!channel&gt; &amp; co) failed: 42 of 100 requests done")
    assert text.endswith(f"<https://batches.example.com/batches/{batch.pk}/|Open in the dashboard>")


def test_email_goes_through_the_django_email_backend():
    Channel.objects.create(kind="email", email="ana@example.com")
    finish(make_batch(batch_id="batch_mailed"), "expired")

    services.process()

    (message,) = mail.outbox
    assert message.to == ["ana@example.com"]
    assert message.subject == "[Batch dashboard] batch_mailed expired"
    assert "Batch batch_mailed (default) expired: 42 of 100 requests done, 2 failed." in message.body
    assert Delivery.objects.get().state == "sent"


def test_a_failed_send_is_retried_after_a_growing_delay(receiver):
    hook = receiver(500, 200)
    Channel.objects.create(kind="webhook", url=hook.url, secret="plain shared secret")
    finish(make_batch(), "cancelled")
    start = timezone.now()

    services.process(start)
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == (
        "pending",
        1,
        "receiver answered HTTP 500",
    )
    assert delivery.next_attempt_at == start + timedelta(seconds=30)

    services.send_due(start + timedelta(seconds=29))
    assert len(hook.requests) == 1  # not due yet
    services.send_due(start + timedelta(seconds=31))

    assert len(hook.wait_for(2)) == 2
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("sent", 2, "")
    first, second = hook.requests
    # The same delivery id on every attempt, so a receiver can drop a repeat.
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert [services.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]


def test_after_the_last_attempt_it_is_given_up_and_shown_to_admins_only(receiver, client):
    hook = receiver(503)
    Channel.objects.create(
        name="ops hook", kind="webhook", url=f"{hook.url}/T0/secret-path-token", secret="k"
    )
    batch = make_batch(batch_id="batch_undeliverable")
    finish(batch, "failed")
    start = timezone.now()
    for seconds in (0, 31, 92):
        services.process(start + timedelta(seconds=seconds))
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("failed", 3)
    services.process(start + timedelta(hours=1))
    assert len(hook.requests) == 3

    member = User.objects.create_user("member", password="pw-member-1")
    client.force_login(member)
    assert client.get("/alerts/failures/").status_code == 403
    assert client.post(f"/alerts/failures/{delivery.pk}/retry/").status_code == 403

    admin = User.objects.create_user("ada", password="pw-admin-1")
    admin.groups.add(Group.objects.get_or_create(name="admin")[0])
    client.force_login(admin)
    page = client.get("/alerts/failures/").content.decode()
    assert "batch_undeliverable" in page and "receiver answered HTTP 503" in page and "given up" in page
    assert "secret-path-token" not in page

    client.post(f"/alerts/failures/{delivery.pk}/retry/")
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 0)


def test_an_unreachable_receiver_is_reported_without_its_url(receiver, caplog):
    hook = receiver()
    url = f"{hook.url}/hooks/T0/very-secret-token"
    hook.close()  # nothing listens there any more
    Channel.objects.create(kind="slack", url=url)
    finish(make_batch())
    with caplog.at_level(logging.INFO):
        services.process()
    delivery = Delivery.objects.get()
    assert delivery.last_error == "could not deliver: ConnectError"
    assert "very-secret-token" not in caplog.text


def test_channels_hear_only_their_connection_and_events(receiver):
    hook = receiver()
    team_a, team_b = make_connection("team-a"), make_connection("team-b")
    Channel.objects.create(kind="webhook", url=hook.url, secret="k", connection=team_a, events=["failed"])
    finish(make_batch(team_b), "failed")
    finish(make_batch(team_a), "completed")
    wanted = make_batch(team_a, batch_id="batch_wanted")
    finish(wanted, "failed")

    services.process()

    assert [d.batch.batch_id for d in Delivery.objects.all()] == ["batch_wanted"]


def test_a_paused_channel_or_deactivated_owner_hears_nothing():
    owner = User.objects.create_user("gone", password="pw-gone-1", is_active=False)
    Channel.objects.create(kind="email", email="gone@example.com", user=owner)
    Channel.objects.create(kind="email", email="paused@example.com", enabled=False)
    finish(make_batch())
    services.process()
    assert not Delivery.objects.exists() and not mail.outbox


def test_stalled_and_at_risk_batches_are_told_once():
    Channel.objects.create(kind="email", email="ops@example.com")
    now = timezone.now()
    make_batch(batch_id="batch_stuck", last_progress_at=now - timedelta(minutes=31))
    make_batch(batch_id="batch_moving", last_progress_at=now - timedelta(minutes=5))
    make_batch(
        batch_id="batch_late",
        last_progress_at=now,
        eta_at=now + timedelta(hours=30),
        expires_at=now + timedelta(hours=2),
    )

    services.process(now)
    services.process(now + timedelta(minutes=1))

    assert sorted(Delivery.objects.values_list("batch__batch_id", "event")) == [
        ("batch_late", "at_risk"),
        ("batch_stuck", "stalled"),
    ]
    assert sorted(message.subject for message in mail.outbox) == [
        "[Batch dashboard] batch_late at risk of expiring",
        "[Batch dashboard] batch_stuck stalled",
    ]


def test_a_batch_first_seen_long_finished_is_history_not_news():
    Channel.objects.create(kind="email", email="ops@example.com")
    now = timezone.now()
    old = make_batch(batch_id="batch_old", status="completed")
    BatchStatusChange.objects.create(
        batch=old,
        old_status="",
        new_status="completed",
        observed_at=now,
        api_timestamp=now - timedelta(days=2),
    )
    fresh = make_batch(batch_id="batch_fresh", status="completed")
    BatchStatusChange.objects.create(
        batch=fresh,
        old_status="",
        new_status="completed",
        observed_at=now,
        api_timestamp=now - timedelta(minutes=5),
    )
    services.process(now)
    assert list(Delivery.objects.values_list("batch__batch_id", flat=True)) == ["batch_fresh"]


def test_the_cursor_trails_changes_until_they_settle():
    Channel.objects.create(kind="email", email="ops@example.com")
    settled = finish(make_batch(), ago=timedelta(minutes=5))
    recent = finish(make_batch(), "failed")

    services.process()
    services.process()

    assert ScanCursor.objects.get(name="status_changes").position == settled.pk
    assert Delivery.objects.count() == 2 and len(mail.outbox) == 2  # the recent one too, and only once
    services.process(timezone.now() + timedelta(minutes=3))
    assert ScanCursor.objects.get(name="status_changes").position == recent.pk


def test_a_delivery_abandoned_mid_send_by_a_dead_worker_is_sent_after_the_lease(receiver):
    hook = receiver()
    channel = Channel.objects.create(kind="webhook", url=hook.url, secret="k")
    now = timezone.now()
    Delivery.objects.create(
        channel=channel,
        batch=make_batch(),
        event="completed",
        payload={"event": "completed"},
        state="sending",
        claimed_at=now - timedelta(minutes=1),
        attempts=1,
        next_attempt_at=now,
        created_at=now,
    )
    services.send_due(now)
    assert not hook.requests  # its worker may still be at it
    services.send_due(now + services.SENDING_LEASE)
    assert len(hook.wait_for(1)) == 1
    assert Delivery.objects.get().state == "sent"


def test_a_user_adds_a_channel_whose_secret_and_url_path_never_come_back(client):
    user = User.objects.create_user("ana", password="pw-ana-1")
    client.force_login(user)
    response = client.post(
        "/alerts/channels/",
        {
            "name": "my hook",
            "kind": "webhook",
            "url": "https://hooks.example.com/T123/path-token",
            "secret": "whsec_c2VjcmV0LXZhbHVl",
            "events": ["completed", "stalled"],
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    channel = Channel.objects.get()
    assert (channel.user, channel.events, channel.connection) == (user, ["completed", "stalled"], None)
    page = client.get("/alerts/channels/").content.decode()
    assert "my hook" in page and "https://hooks.example.com/…" in page
    assert "path-token" not in page and "whsec_c2VjcmV0LXZhbHVl" not in page

    other = User.objects.create_user("bo", password="pw-bo-1")
    client.force_login(other)
    assert "my hook" not in client.get("/alerts/channels/").content.decode()
    assert client.post(f"/alerts/channels/{channel.pk}/delete/").status_code == 404
    assert Channel.objects.exists()


def test_a_webhook_channel_needs_a_secret(client):
    client.force_login(User.objects.create_user("ana", password="pw-ana-1"))
    response = client.post("/alerts/channels/", {"kind": "webhook", "url": "https://hooks.example.com/x"})
    assert response.status_code == 200
    assert "A webhook needs a secret" in response.content.decode()
    assert not Channel.objects.exists()


def test_beat_runs_the_alerts_task(settings):
    from dashboard.celery import app

    app.loader.import_default_modules()
    entry = settings.CELERY_BEAT_SCHEDULE["process-alerts"]
    assert entry["task"] in app.tasks
    assert entry["schedule"] == settings.ALERTS_INTERVAL


def test_the_admin_never_shows_a_channel_secret(client):
    channel = Channel.objects.create(
        kind="webhook", url="https://hooks.example.com/x", secret="whsec_dG9wLXNlY3JldA=="
    )
    client.force_login(User.objects.create_superuser("root", password="pw-root-1"))
    page = client.get(f"/admin/alerts/channel/{channel.pk}/change/")
    assert page.status_code == 200
    assert "whsec_dG9wLXNlY3JldA==" not in page.content.decode()
    # Saving without typing the secret again keeps it.
    response = client.post(
        f"/admin/alerts/channel/{channel.pk}/change/",
        {
            "name": "renamed",
            "kind": "webhook",
            "url": "https://hooks.example.com/x",
            "secret": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.secret) == ("renamed", "whsec_dG9wLXNlY3JldA==")
