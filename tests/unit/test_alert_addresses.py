"""Personal channels of non-admins may not post to internal addresses (alerts/addresses.py)."""

import pytest
from cryptography.fernet import Fernet

from accounts.roles import ADMIN, VIEWER
from alerts import addresses, services
from alerts.models import Channel, Delivery
from batches.models import BatchStatusChange
from tests.support.factories import make_batch, make_user
from tests.unit.network import FakeDNS, guard_loopback, install_fake_dns

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def encryption_key(settings):
    # Channels' URLs are stored encrypted with it (alerts/models.py).
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def no_traffic_off_loopback(monkeypatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture
def fake_dns(monkeypatch) -> FakeDNS:
    return install_fake_dns(monkeypatch)


@pytest.fixture
def viewer(client):
    user = make_user("vera", VIEWER)
    client.force_login(user)
    return user


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.7/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_internal_addresses_are_recognised(url):
    assert addresses.internal_address(url) is not None


def test_a_public_address_is_not_internal():
    assert addresses.internal_address("https://8.8.8.8/hook") is None


def test_a_viewer_cannot_add_a_webhook_to_an_internal_address(client, viewer, hook):
    response = client.post(
        "/alerts/channels/",
        {"kind": "slack", "url": f"{hook.url}/services/x", "events": ["completed"], "enabled": "on"},
    )
    assert response.status_code == 200
    assert "Refused: the URL leads to an internal address (127.0.0.1)" in response.content.decode()
    assert not Channel.objects.exists()


def test_an_admin_may_add_a_team_webhook_to_an_internal_address(client, hook):
    client.force_login(make_user("ada", ADMIN))
    response = client.post(
        "/alerts/channels/", {"kind": "slack", "url": f"{hook.url}/services/x", "team": "1", "enabled": "on"}
    )
    assert response.status_code == 302
    assert Channel.objects.get().user is None


def _finish_a_batch() -> None:
    batch = make_batch()
    BatchStatusChange.objects.create(
        batch=batch, old_status="in_progress", new_status="completed", observed_at=batch.last_synced_at
    )
    batch.status, batch.is_terminal = "completed", True
    batch.save()


def test_a_viewers_channel_to_an_internal_address_is_refused_at_send_time(viewer, hook):
    # Saved before the check existed (or its owner lost the admin role since).
    Channel.objects.create(kind="slack", url=f"{hook.url}/services/x", user=viewer)
    _finish_a_batch()
    services.process()
    delivery = Delivery.objects.get()
    assert "internal address (127.0.0.1)" in delivery.last_error
    assert delivery.state != "sent"
    assert hook.requests == []


def test_a_deployment_may_allow_internal_addresses_for_everyone(client, viewer, hook, settings):
    settings.ALERTS_ALLOW_INTERNAL_URLS = True
    Channel.objects.create(kind="slack", url=f"{hook.url}/services/x", user=viewer)
    _finish_a_batch()
    services.process()
    assert len(hook.wait_for(1)) == 1
    assert Delivery.objects.get().state == "sent"


def test_a_viewers_webhook_goes_to_the_address_that_was_checked_not_to_a_later_answer(
    viewer, hook, fake_dns, no_traffic_off_loopback
):
    # DNS rebinding: the check sees a public address, a second lookup would give loopback.
    port = hook.url.rsplit(":", 1)[1]
    fake_dns.set("hooks.rebind.test", ["93.184.216.34"], ["127.0.0.1"])
    Channel.objects.create(kind="slack", url=f"http://hooks.rebind.test:{port}/services/x", user=viewer)
    _finish_a_batch()
    services.process()
    assert hook.requests == []
    assert no_traffic_off_loopback == ["93.184.216.34"]  # the checked address, refused by the guard
    delivery = Delivery.objects.get()
    assert delivery.state != "sent" and "ConnectError" in delivery.last_error


def test_a_team_channel_posts_to_the_first_answer_of_its_name(hook, fake_dns):
    port = hook.url.rsplit(":", 1)[1]
    fake_dns.set("hooks.team.test", ["127.0.0.1"], ["127.0.0.2"])
    Channel.objects.create(kind="slack", url=f"http://hooks.team.test:{port}/services/x")
    _finish_a_batch()
    services.process()
    assert len(hook.wait_for(1)) == 1
    assert hook.requests[0].headers["host"] == f"hooks.team.test:{port}"
    assert fake_dns.lookups["hooks.team.test"] == 1
    assert Delivery.objects.get().state == "sent"
