"""/metrics, read back with prometheus_client's own parser."""

import math
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.models import Channel, Delivery
from tests.support.factories import make_batch, make_connection

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.STALLED_AFTER_MINUTES = 30
    return TOKEN


def scrape(client) -> dict[str, dict[tuple, float]]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        family.name: {tuple(sorted(sample.labels.items())): sample.value for sample in family.samples}
        for family in text_string_to_metric_families(response.content.decode())
    }


def test_without_a_token_configured_there_is_no_metrics_page(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404


def test_a_wrong_or_missing_token_is_refused(client, token):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}")
    assert response.status_code == 401
    assert TOKEN not in response.content.decode()


def test_the_numbers_are_the_databases(client, token, settings):
    now = timezone.now()
    # A name that needs escaping in a label value.
    odd = make_connection(
        'team "b" \\ two',
        last_success_at=now - timedelta(seconds=120),
        consecutive_failures=3,
        last_error_at=now - timedelta(seconds=30),
    )
    plain = make_connection("team-a")
    make_batch(
        plain,
        total_requests=100,
        completed_requests=40,
        failed_requests=2,
        input_tokens=1000,
        total_tokens=1500,
    )
    make_batch(plain, status="finalizing", total_requests=50, completed_requests=50, failed_requests=0)
    make_batch(
        plain,
        status="completed",
        total_requests=10,
        completed_requests=10,
        failed_requests=0,
        total_tokens=500,
    )
    make_batch(odd, status="failed")
    make_batch(odd, last_progress_at=now - timedelta(hours=1))  # stalled
    make_batch(odd, last_progress_at=now, eta_at=now + timedelta(days=2))  # will not make it
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()  # channel URLs are encrypted
    hook = Channel.objects.create(kind="webhook", url="http://127.0.0.1:9/", secret="k")
    batch = make_batch(plain, status="completed")
    for event, state, attempts in (
        ("completed", "failed", 8),
        ("stalled", "pending", 2),
        ("at_risk", "sent", 1),
    ):
        Delivery.objects.create(
            channel=hook,
            batch=batch,
            event=event,
            state=state,
            attempts=attempts,
            next_attempt_at=now,
            created_at=now,
        )

    metrics = scrape(client)

    batches = metrics["batch_dashboard_batches"]
    assert batches[(("connection", "team-a"), ("status", "in_progress"))] == 1
    assert batches[(("connection", "team-a"), ("status", "completed"))] == 2
    assert batches[(("connection", 'team "b" \\ two'), ("status", "failed"))] == 1
    assert batches[(("connection", "team-a"), ("status", "expired"))] == 0
    requests = metrics["batch_dashboard_active_requests"]
    assert requests[(("connection", "team-a"), ("kind", "total"))] == 150
    assert requests[(("connection", "team-a"), ("kind", "completed"))] == 90
    assert requests[(("connection", "team-a"), ("kind", "failed"))] == 2
    tokens = metrics["batch_dashboard_tokens"]
    assert tokens[(("connection", "team-a"), ("kind", "total"))] == 2000
    assert tokens[(("connection", "team-a"), ("kind", "input"))] == 1000
    lag = metrics["batch_dashboard_sync_lag_seconds"]
    assert 119 <= lag[(("connection", 'team "b" \\ two'),)] < 130
    assert math.isinf(lag[(("connection", "team-a"),)])
    assert metrics["batch_dashboard_api_consecutive_failures"][(("connection", 'team "b" \\ two'),)] == 3
    last_error = metrics["batch_dashboard_api_last_error_timestamp_seconds"]
    assert last_error[(("connection", 'team "b" \\ two'),)] == pytest.approx(
        (now - timedelta(seconds=30)).timestamp()
    )
    assert last_error[(("connection", "team-a"),)] == 0
    assert metrics["batch_dashboard_stalled_batches"][(("connection", 'team "b" \\ two'),)] == 1
    assert metrics["batch_dashboard_at_risk_batches"][(("connection", 'team "b" \\ two'),)] == 1
    assert metrics["batch_dashboard_at_risk_batches"][(("connection", "team-a"),)] == 0
    notifications = metrics["batch_dashboard_notifications"]
    assert notifications[(("channel_kind", "webhook"), ("state", "failed"))] == 1
    assert notifications[(("channel_kind", "webhook"), ("state", "sent"))] == 1
    assert notifications[(("channel_kind", "email"), ("state", "failed"))] == 0
    assert metrics["batch_dashboard_notifications_retrying"][(("channel_kind", "webhook"),)] == 1


def test_the_example_alert_rules_use_only_metrics_that_exist(client, token):
    import re
    from pathlib import Path

    import yaml

    rules = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "docs" / "prometheus-alerts.yml").read_text()
    )
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in expressions for name in re.findall(r"batch_dashboard_\w+", expr)}
    make_connection("team-a")
    assert used and used <= set(scrape(client))
