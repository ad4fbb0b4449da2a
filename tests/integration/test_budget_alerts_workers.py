"""Budget alerts sent by two real Celery workers racing each other through a real Redis: once each."""

from __future__ import annotations

import time
from decimal import Decimal

from cryptography.fernet import Fernet
from django.utils import timezone

from alerts.models import Channel
from spend import costs, shipped, tasks
from spend.models import Budget, BudgetAlert, Price
from tests.support.factories import make_batch
from tests.support.receivers import Receiver


def test_two_workers_send_each_budget_threshold_exactly_once(start_worker, transactional_db, settings):
    key = settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    hook = Receiver(delay=0.05)
    try:
        # An earlier transactional test's flush takes the prices the migration loaded.
        if not Price.objects.filter(model="gpt-4o").exists():
            shipped.load(Price)
        Channel.objects.create(kind="webhook", url=hook.url)
        now = timezone.now()
        budgets = [
            Budget.objects.create(
                metadata_key="project", metadata_value=f"p{index}", monthly_usd=Decimal("1"), created_at=now
            )
            for index in range(4)
        ]
        for index in range(4):
            # $1.25 of gpt-4o input: over 100 % of each $1 budget, so 80 % and 100 % are both due.
            make_batch(
                model="gpt-4o",
                status="completed",
                created_at=now,
                metadata={"project": f"p{index}"},
                input_tokens=1_000_000,
                output_tokens=0,
            )
        costs.recompute()
        workers = [start_worker(DASHBOARD_ENCRYPTION_KEY=key), start_worker(DASHBOARD_ENCRYPTION_KEY=key)]
        for _ in range(8):
            tasks.check_budgets.delay()

        hook.wait_for(8)
        deadline = time.monotonic() + 20
        while BudgetAlert.objects.exclude(state="sent").exists() or BudgetAlert.objects.count() < 8:
            assert time.monotonic() < deadline, "budget alerts left unsent"
            time.sleep(0.1)
        time.sleep(1.0)  # room for a duplicate to arrive, were there one

        assert BudgetAlert.objects.count() == 8
        assert len(hook.requests) == 8
        sent = sorted((r.json()["budget"]["name"], r.json()["budget"]["threshold"]) for r in hook.requests)
        assert sent == sorted((str(b), kind) for b in budgets for kind in ("80", "100"))
        assert all("spend.tasks.check_budgets" in worker.output() for worker in workers)
    finally:
        hook.close()
