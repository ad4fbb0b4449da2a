"""Spend on /metrics: what every connection and model cost, and each budget's state this month.

The families join the alerts app's private registry (alerts.exposition), read from the database at
every scrape like the others, so that every web worker answers the same."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

_registered = False


class SpendCollector:
    def collect(self) -> Iterable[Metric]:
        from spend import selectors

        # A gauge, though named _total as the issue asks: editing a price can lower it, which a counter
        # must never do.
        spend = GaugeMetricFamily(
            "batch_spend_usd_total",
            "Cost in US dollars of every priced batch the dashboard knows (usage x the price table).",
            labels=("connection", "model"),
        )
        for connection, model, micros in selectors.spend_by_connection_and_model():
            spend.add_metric((connection, model), micros / 1e6)
        yield spend

        limit = GaugeMetricFamily("batch_budget_usd", "A monthly budget in US dollars.", labels=("budget",))
        spent = GaugeMetricFamily(
            "batch_budget_spent_usd", "Spent this month against a budget, in US dollars.", labels=("budget",)
        )
        projected = GaugeMetricFamily(
            "batch_budget_projected_usd",
            "This month's spend against a budget at the month's pace so far, in US dollars.",
            labels=("budget",),
        )
        for state in selectors.budget_states(timezone.now()):
            label = (state.label,)
            limit.add_metric(label, float(state.budget.monthly_usd))
            spent.add_metric(label, state.spent_micros / 1e6)
            projected.add_metric(label, state.projected_micros / 1e6)
        yield limit
        yield spent
        yield projected


def register() -> None:
    global _registered
    if _registered:
        return
    from alerts.exposition import registry

    registry.register(SpendCollector())
    _registered = True
