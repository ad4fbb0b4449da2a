"""Celery tasks: thin wrappers over the spend services."""

from __future__ import annotations

from celery import shared_task

from spend import budget_alerts


@shared_task(ignore_result=True)
def check_budgets() -> str:
    """Run by beat; safe on several workers at once (see spend.budget_alerts)."""
    return budget_alerts.process()
