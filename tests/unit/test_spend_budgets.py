"""Budgets: alerts at 80 % and 100 % once per threshold and month, a pace warning, their state, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.test import Client

from alerts.models import Channel
from spend import budget_alerts, costs, selectors
from spend.models import Budget, BudgetAlert
from tests.support.factories import make_batch, make_connection, make_user
from tests.support.receivers import Receiver

pytestmark = pytest.mark.django_db

MID_MONTH = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _spend(
    dollars_of_gpt4o_input: int, *, at: datetime, metadata: dict | None = None, connection=None
) -> None:
    # gpt-4o input is $1.25 per million tokens at the Batch API's price.
    make_batch(
        connection,
        model="gpt-4o",
        status="completed",
        created_at=at,
        metadata=metadata or {"project": "search"},
        input_tokens=int(dollars_of_gpt4o_input / 1.25 * 1_000_000),
        output_tokens=0,
    )
    costs.recompute()


@pytest.fixture
def budget():
    return Budget.objects.create(
        metadata_key="project", metadata_value="search", monthly_usd=Decimal("100"), created_at=MID_MONTH
    )


def _kinds() -> list[str]:
    return sorted(BudgetAlert.objects.values_list("kind", flat=True))


def test_each_threshold_alerts_once_per_month(budget, settings, hook):
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    Channel.objects.create(kind="webhook", url=hook.url)
    _spend(40, at=MID_MONTH - timedelta(days=1))
    budget_alerts.process(MID_MONTH)
    assert _kinds() == []  # 40 % used, on pace for 83 %: nothing to say
    _spend(45, at=MID_MONTH - timedelta(hours=1))
    for _ in range(3):
        budget_alerts.process(MID_MONTH)
    assert _kinds() == ["80", "pace"]
    _spend(20, at=MID_MONTH - timedelta(minutes=1))
    budget_alerts.process(MID_MONTH)
    budget_alerts.process(MID_MONTH)
    assert _kinds() == ["100", "80", "pace"]
    hook.wait_for(3)
    assert len(hook.requests) == 3
    summaries = sorted(request.json()["summary"] for request in hook.requests)
    assert any("reached 100 %" in text and "$105.00 of $100.00" in text for text in summaries)
    # Another project's spend does not count.
    _spend(500, at=MID_MONTH, metadata={"project": "ads"})
    assert selectors.budget_state(budget, MID_MONTH).spent_micros == 105_000_000
    # Next month starts afresh.
    next_month = MID_MONTH + timedelta(days=30)
    _spend(90, at=next_month - timedelta(hours=1))
    budget_alerts.process(next_month)
    assert BudgetAlert.objects.filter(month=next_month.date().replace(day=1)).count() == 2


def test_a_connection_budget_counts_that_connection_only():
    team = make_connection("team-b")
    budget = Budget.objects.create(connection=team, monthly_usd=Decimal("10"), created_at=MID_MONTH)
    _spend(8, at=MID_MONTH - timedelta(hours=1), connection=team)
    _spend(80, at=MID_MONTH - timedelta(hours=1))
    state = selectors.budget_state(budget, MID_MONTH)
    assert state.spent_micros == 8_000_000 and state.state == "warning"


def test_a_budget_needs_exactly_one_scope():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Budget.objects.create(monthly_usd=Decimal("1"), created_at=MID_MONTH)
    admin = Client()
    admin.force_login(make_user("boss", "admin"))
    response = admin.post(
        "/spend/budgets/new/", {"connection": "", "metadata": "no-equals", "monthly_usd": "5"}
    )
    assert response.status_code == 200 and b"key=value" in response.content


def test_metrics_carry_spend_per_connection_and_model_and_budget_gauges(budget, settings):
    settings.METRICS_TOKEN = "metrics-token-123"
    _spend(10, at=datetime.now(UTC))
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-123")
    text = response.content.decode()
    assert 'batch_spend_usd_total{connection="default",model="gpt-4o"} 10.0' in text
    assert 'batch_budget_usd{budget="project=search"} 100.0' in text
    assert 'batch_budget_spent_usd{budget="project=search"} 10.0' in text


def test_a_channel_ticked_for_budget_warnings_hears_them_and_one_ticked_for_outcomes_does_not(
    budget, settings, hook, client
):
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.ALERTS_ALLOW_INTERNAL_URLS = True  # the receiver is on loopback
    admin = make_user("ada", role="admin")
    client.force_login(admin)
    form = client.get("/alerts/channels/").content.decode()
    assert 'value="budget"' in form and "budget warnings" in form
    for events in (["budget"], ["completed"]):
        response = client.post(
            "/alerts/channels/",
            {
                "name": f"for {events[0]}",
                "kind": "slack",
                "url": f"{hook.url}/services/x",
                "events": events,
                "team": "1",
                "enabled": "on",
            },
        )
        assert response.status_code == 302, response.context["form"].errors
    assert sorted(Channel.objects.values_list("events", flat=True)) == [["budget"], ["completed"]]
    _spend(85, at=MID_MONTH - timedelta(hours=1))
    budget_alerts.process(MID_MONTH)
    assert _kinds() == ["80", "pace"]
    hook.wait_for(2)
    assert len(hook.requests) == 2  # the two alerts, to the budget channel only
    assert all("Budget project=search" in request.body.decode() for request in hook.requests)


def test_a_failed_budget_alert_is_tried_again_later_and_only_to_the_channels_not_yet_told(
    budget, settings, hook
):
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.ALERTS_MAX_ATTEMPTS = 3
    failing_once = Receiver((500, 500, 200))
    try:
        Channel.objects.create(kind="webhook", url=hook.url, secret="k")
        Channel.objects.create(kind="webhook", url=failing_once.url, secret="k")
        _spend(85, at=MID_MONTH - timedelta(hours=1))
        budget_alerts.process(MID_MONTH)
        assert (len(hook.wait_for(2)), len(failing_once.wait_for(2))) == (2, 2)
        alerts = BudgetAlert.objects.all()
        assert {(a.state, a.attempts) for a in alerts} == {("pending", 1)}
        assert all(a.next_attempt_at > MID_MONTH and "500" in a.last_error for a in alerts)

        budget_alerts.process(MID_MONTH)  # not due yet: nobody hears anything more
        assert (len(hook.requests), len(failing_once.requests)) == (2, 2)

        budget_alerts.process(MID_MONTH + timedelta(hours=1))
        failing_once.wait_for(4)
        assert (len(hook.requests), len(failing_once.requests)) == (2, 4)
        assert {(a.state, a.attempts, a.last_error) for a in BudgetAlert.objects.all()} == {("sent", 2, "")}
    finally:
        failing_once.close()


def test_a_budget_alert_is_given_up_after_its_last_attempt_and_one_left_sending_is_taken_back(
    budget, settings
):
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.ALERTS_MAX_ATTEMPTS = 1
    failing = Receiver((500,))
    try:
        Channel.objects.create(kind="webhook", url=failing.url, secret="k")
        _spend(85, at=MID_MONTH - timedelta(hours=1))
        budget_alerts.process(MID_MONTH)
        assert set(BudgetAlert.objects.values_list("state", flat=True)) == {"failed"}

        # A worker that died mid-send left this one "sending": after the lease it goes back to pending.
        BudgetAlert.objects.update(state="sending", attempts=0, claimed_at=MID_MONTH)
        assert budget_alerts.release_abandoned(MID_MONTH + timedelta(minutes=1)) == 0
        assert budget_alerts.release_abandoned(MID_MONTH + timedelta(minutes=3)) == 2
        assert set(BudgetAlert.objects.values_list("state", flat=True)) == {"pending"}
    finally:
        failing.close()
