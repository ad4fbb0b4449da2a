"""Alert channels' secrets at rest: HMAC secrets and Slack/webhook URLs are encrypted like connection
keys, or read from an environment variable, and never shown (issue 13, hole 12)."""

import base64
import hashlib
import hmac
import secrets as random_secrets

import pytest
from cryptography.fernet import Fernet
from django.db import connection as db_connection
from django.utils import timezone

from accounts.roles import ADMIN, VIEWER
from alerts import services
from alerts.models import Channel, Delivery
from batches.models import BatchStatusChange
from tests.support.factories import make_batch, make_user

pytestmark = pytest.mark.django_db

TOKEN = "XyZzY-path-token-0123456789"


@pytest.fixture(autouse=True)
def encryption_key(settings) -> str:
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    return settings.DASHBOARD_ENCRYPTION_KEY


@pytest.fixture
def admin(client):
    user = make_user("ada", ADMIN)
    client.force_login(user)
    return user


def new_secret() -> str:
    return "whsec_" + base64.b64encode(random_secrets.token_bytes(32)).decode()


def finish_a_batch() -> None:
    batch = make_batch(batch_id="batch_secret", status="completed")
    now = timezone.now()
    BatchStatusChange.objects.create(
        batch=batch, old_status="in_progress", new_status="completed", observed_at=now, api_timestamp=now
    )


def raw_channel_rows() -> str:
    """Every column of every channel as the database holds it, bypassing the model."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT * FROM alerts_channel")
        return repr(cursor.fetchall())


def assert_signed_with(request, secret: str) -> None:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = (
        f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    )
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"


def test_the_database_holds_neither_the_secret_nor_the_url_and_the_webhook_still_verifies(
    client, admin, hook
):
    secret = new_secret()
    url = f"{hook.url}/hooks/{TOKEN}"
    response = client.post(
        "/alerts/channels/",
        {"name": "ops", "kind": "webhook", "url": url, "secret": secret, "team": "1", "enabled": "on"},
    )
    assert response.status_code == 302

    raw = raw_channel_rows()
    assert secret not in raw and secret.removeprefix("whsec_") not in raw
    assert TOKEN not in raw and "/hooks/" not in raw

    finish_a_batch()
    services.process()
    (request,) = hook.wait_for(1)
    assert request.path == f"/hooks/{TOKEN}"
    assert_signed_with(request, secret)
    assert Delivery.objects.get().state == "sent"


def test_a_channel_may_read_its_url_and_secret_from_environment_variables(client, admin, hook, monkeypatch):
    secret = new_secret()
    monkeypatch.setenv("ALERT_OPS_HOOK_URL", f"{hook.url}/from-env/{TOKEN}")
    monkeypatch.setenv("ALERT_OPS_HOOK_SECRET", secret)
    response = client.post(
        "/alerts/channels/",
        {
            "name": "from the environment",
            "kind": "webhook",
            "url_env": "ALERT_OPS_HOOK_URL",
            "secret_env": "ALERT_OPS_HOOK_SECRET",
            "team": "1",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    raw = raw_channel_rows()
    assert TOKEN not in raw and secret not in raw

    finish_a_batch()
    services.process()
    (request,) = hook.wait_for(1)
    assert request.path == f"/from-env/{TOKEN}"
    assert_signed_with(request, secret)
    page = client.get("/alerts/channels/").content.decode()
    assert "ALERT_OPS_HOOK_URL" in page and TOKEN not in page and secret not in page


@pytest.mark.parametrize(
    "name",
    [
        "DJANGO_SECRET_KEY",
        "DASHBOARD_ENCRYPTION_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "EMAIL_HOST_PASSWORD",
        "METRICS_TOKEN",
        "OPENAI_WEBHOOK_SECRET",
        "OPENAI_API_KEY",
        "PORT",
        "HOME",
        "alert lower; rm",
    ],
)
def test_a_channel_may_not_read_the_dashboards_own_variables(client, admin, name):
    response = client.post(
        "/alerts/channels/",
        {"kind": "webhook", "url": "https://hooks.example.com/x", "secret_env": name, "team": "1"},
    )
    assert response.status_code == 200
    assert 'id="id_secret_env_error"' in response.content.decode()
    assert not Channel.objects.exists()


def test_a_variable_refused_after_it_was_saved_is_not_read_at_send_time(hook, monkeypatch):
    # Saved directly, as if the allowed pattern had been narrowed since.
    monkeypatch.setenv("DJANGO_SECRET_KEY", "not-for-a-webhook")
    Channel.objects.create(kind="webhook", url=hook.url, secret_env="DJANGO_SECRET_KEY")
    finish_a_batch()
    services.process()
    delivery = Delivery.objects.get()
    assert delivery.state == "pending" and "DJANGO_SECRET_KEY" in delivery.last_error
    assert hook.requests == []


def test_the_secret_and_the_full_url_never_appear_in_a_page(client, hook, django_user_model):
    secret = new_secret()
    channel = Channel.objects.create(
        name="ops", kind="webhook", url=f"https://hooks.example.com/T0/{TOKEN}", secret=secret
    )
    Delivery.objects.create(
        channel=channel,
        batch=make_batch(),
        event="completed",
        state="failed",
        attempts=3,
        last_error="receiver answered HTTP 500",
        next_attempt_at=timezone.now(),
        created_at=timezone.now(),
    )
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root-1"))
    pages = "".join(
        client.get(path).content.decode()
        for path in (
            "/alerts/channels/",
            "/alerts/failures/",
            "/admin/alerts/channel/",
            f"/admin/alerts/channel/{channel.pk}/change/",
        )
    )
    assert TOKEN not in pages and secret not in pages and secret.removeprefix("whsec_") not in pages
    # Host and last four characters, as connection keys are shown.
    assert "https://hooks.example.com/…6789" in pages


def test_editing_in_the_admin_without_retyping_keeps_the_url_and_secret(client, hook, django_user_model):
    secret = new_secret()
    channel = Channel.objects.create(kind="webhook", url=f"{hook.url}/{TOKEN}", secret=secret)
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root-1"))
    response = client.post(
        f"/admin/alerts/channel/{channel.pk}/change/",
        {"name": "renamed", "kind": "webhook", "url": "", "secret": "", "enabled": "on"},
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.url, channel.secret) == ("renamed", f"{hook.url}/{TOKEN}", secret)


def test_without_an_encryption_key_a_url_cannot_be_stored_but_can_be_named(client, settings, admin):
    settings.DASHBOARD_ENCRYPTION_KEY = ""
    url = f"https://hooks.example.com/{TOKEN}"
    response = client.post("/alerts/channels/", {"kind": "slack", "url": url, "team": "1", "enabled": "on"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "DASHBOARD_ENCRYPTION_KEY is not set" in page and TOKEN not in page
    assert not Channel.objects.exists()

    response = client.post(
        "/alerts/channels/", {"kind": "slack", "url_env": "ALERT_SLACK_URL", "team": "1", "enabled": "on"}
    )
    assert response.status_code == 302
    assert Channel.objects.get().url_env == "ALERT_SLACK_URL"


def test_only_admins_name_environment_variables(client, monkeypatch):
    monkeypatch.setenv("ALERT_TEAM_SLACK_URL", "https://hooks.example.com/team")
    client.force_login(make_user("vera", VIEWER))
    response = client.post(
        "/alerts/channels/", {"kind": "slack", "url_env": "ALERT_TEAM_SLACK_URL", "enabled": "on"}
    )
    assert response.status_code == 200
    assert 'name="url_env"' not in response.content.decode()
    assert not Channel.objects.exists()
    client.force_login(make_user("ada", ADMIN))
    assert 'name="url_env"' in client.get("/alerts/channels/").content.decode()


def test_a_channel_encrypted_with_another_key_fails_its_delivery_with_a_reason(settings, hook, client):
    Channel.objects.create(kind="slack", url=f"{hook.url}/{TOKEN}")
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()  # the key was changed
    finish_a_batch()
    services.process()
    delivery = Delivery.objects.get()
    assert delivery.state == "pending" and "DASHBOARD_ENCRYPTION_KEY" in delivery.last_error
    assert hook.requests == []
    client.force_login(make_user("root", ADMIN))
    assert client.get("/alerts/channels/").status_code == 200
    assert client.get("/alerts/failures/").status_code == 200


# --- the migration of existing rows ------------------------------------------------------------

BEFORE = [("alerts", "0002_start_cursor_at_existing_changes")]
AFTER = [("alerts", "0005_remove_plaintext_channel_secrets")]


def migrate(targets):
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(db_connection)
    executor.migrate(targets)
    return MigrationExecutor(db_connection).loader.project_state(targets).apps


@pytest.fixture
def plaintext_channel(transactional_db, settings):
    """A channel as the code before the encryption stored it, with its URL and secret in plain text."""
    secret = new_secret()
    url = f"https://hooks.example.com/services/{TOKEN}"
    old = migrate(BEFORE)
    try:
        old.get_model("alerts", "Channel").objects.create(kind="webhook", url=url, secret=secret)
        yield url, secret
    finally:
        # Whatever the test did, the schema is the current one again for the tests after it.
        with db_connection.cursor() as cursor:
            cursor.execute("DELETE FROM alerts_channel")
        migrate(AFTER)


def test_the_migration_encrypts_the_urls_and_secrets_of_existing_channels(plaintext_channel):
    url, secret = plaintext_channel
    migrate(AFTER)
    raw = raw_channel_rows()
    assert TOKEN not in raw and secret not in raw
    channel = Channel.objects.get()
    assert (channel.url, channel.secret) == (url, secret)
    assert channel.target == "https://hooks.example.com/…6789"


def test_without_a_key_the_migration_refuses_rather_than_keep_plain_text(plaintext_channel, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.DASHBOARD_ENCRYPTION_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="DASHBOARD_ENCRYPTION_KEY is not set"):
        migrate(AFTER)
    # Nothing was lost: the rows still hold what they held.
    assert TOKEN in raw_channel_rows()
