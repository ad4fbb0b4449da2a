"""Budget alerts: at 80 % and 100 % of a month's budget, and when the month's pace projects an overrun,
told once through the alert channels (alerts.channels).

Several workers may run this at once. "Once" is the database's: a BudgetAlert exists at most once per
(budget, month, kind) by a unique constraint, and only the worker whose compare-and-set moves it from
pending to sending sends it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from alerts import channels
from alerts import services as alert_services
from alerts.models import BUDGET_EVENT, Channel
from spend.models import BudgetAlert
from spend.money import dollars
from spend.selectors import BudgetState, budget_states

logger = logging.getLogger(__name__)

EVENT = BUDGET_EVENT
# A pace read from the first day of a month says more about one big batch than about the month.
PACE_AFTER = timedelta(days=2)


def _due(state: BudgetState, now: datetime) -> list[str]:
    kinds = []
    if state.used >= 1:
        kinds.append(BudgetAlert.Kind.REACHED_100)
    if state.used >= 0.8:
        kinds.append(BudgetAlert.Kind.REACHED_80)
    month_start = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if state.used < 1 and state.projected_micros > state.limit_micros and now - month_start >= PACE_AFTER:
        kinds.append(BudgetAlert.Kind.PACE)
    return [str(kind) for kind in kinds]


def summary_of(state: BudgetState, kind: str) -> str:
    budget = state.budget
    head = f"Budget {budget} ({budget.scope})"
    spent = f"${dollars(state.spent_micros)} of ${budget.monthly_usd} spent in {state.month:%B %Y}"
    if kind == BudgetAlert.Kind.PACE:
        return f"{head} is on pace to overrun: {spent}; at this pace ${dollars(state.projected_micros)}."
    return f"{head} reached {kind} %: {spent} ({state.used_pct} %)."


def payload_for(state: BudgetState, kind: str, now: datetime) -> dict[str, Any]:
    base = settings.DASHBOARD_URL.rstrip("/")
    return {
        "type": f"budget.{'pace' if kind == BudgetAlert.Kind.PACE else 'threshold'}",
        "event": EVENT,
        "occurred_at": now.isoformat(),
        "summary": summary_of(state, kind),
        "budget": {
            "name": str(state.budget),
            "scope": state.budget.scope,
            "month": f"{state.month:%Y-%m}",
            "threshold": kind,
            "monthly_usd": str(state.budget.monthly_usd),
            "spent_usd": f"{state.spent_micros / 1e6:.2f}",
            "projected_usd": f"{state.projected_micros / 1e6:.2f}",
        },
        "url": f"{base}/spend/" if base else "/spend/",
    }


def notice(now: datetime) -> int:
    """A pending BudgetAlert for each threshold newly crossed; returns how many this worker created."""
    rows = [
        BudgetAlert(
            budget=state.budget,
            month=state.month,
            kind=kind,
            spent_micros=state.spent_micros,
            payload=payload_for(state, kind, now),
            created_at=now,
        )
        for state in budget_states(now)
        for kind in _due(state, now)
    ]
    if not rows:
        return 0
    existing = set(
        BudgetAlert.objects.filter(
            budget__in={row.budget_id for row in rows}, month__in={row.month for row in rows}
        ).values_list("budget_id", "month", "kind")
    )
    new = [row for row in rows if (row.budget_id, row.month, row.kind) not in existing]
    # A concurrent worker may insert the same rows meanwhile: the constraint drops the repeats.
    BudgetAlert.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def _listening(alert: BudgetAlert) -> list[Channel]:
    channels_ = Channel.objects.filter(enabled=True).filter(Q(user__isnull=True) | Q(user__is_active=True))
    connection_id = alert.budget.connection_id
    return [
        channel
        for channel in channels_
        if (not channel.events or EVENT in channel.events)
        and (channel.connection_id is None or channel.connection_id == connection_id)
    ]


def release_abandoned(now: datetime) -> int:
    """Alerts left "sending" by a worker that died go back to pending (or are given up on the last
    attempt, as alert deliveries are)."""
    abandoned = BudgetAlert.objects.filter(
        state=BudgetAlert.State.SENDING, claimed_at__lt=now - alert_services.SENDING_LEASE
    )
    abandoned.filter(attempts__gte=settings.ALERTS_MAX_ATTEMPTS).update(
        state=BudgetAlert.State.FAILED,
        claimed_at=None,
        last_error="the worker sending it stopped before it finished, on the last attempt",
    )
    return abandoned.update(state=BudgetAlert.State.PENDING, claimed_at=None)


def _send(alert: BudgetAlert) -> list[str]:
    """Tells every listening channel not told yet; returns the failures in words (never a secret)."""
    errors = []
    for channel in _listening(alert):
        if channel.pk in alert.told:
            continue
        try:
            channels.send(channel, alert.pk, alert.payload, now=timezone.now(), sent_as=f"budget_{alert.pk}")
        except Exception as error:
            # One channel's failure neither stops the others nor resends to those already told.
            reason = str(error)[:300] if isinstance(error, channels.SendError) else type(error).__name__
            errors.append(f"{channel}: {reason}")
            logger.warning("Budget alert %s to channel %s failed: %s", alert.pk, channel.pk, reason)
        else:
            alert.told.append(channel.pk)
    return errors


def send_pending(now: datetime) -> int:
    """Send every due pending alert that this worker wins by compare-and-set; returns how many it
    finished sending. A failure is tried again after the alert channels' backoff, up to
    ALERTS_MAX_ATTEMPTS attempts."""
    release_abandoned(now)
    due = BudgetAlert.objects.filter(state=BudgetAlert.State.PENDING).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    sent = 0
    for pk in due.values_list("pk", flat=True)[:50]:
        if not BudgetAlert.objects.filter(pk=pk, state=BudgetAlert.State.PENDING).update(
            state=BudgetAlert.State.SENDING, claimed_at=timezone.now(), attempts=F("attempts") + 1
        ):
            continue  # another worker has it
        alert = BudgetAlert.objects.select_related("budget").get(pk=pk)
        errors = _send(alert)
        if not errors:
            state, next_attempt_at = BudgetAlert.State.SENT, None
            sent += 1
        elif alert.attempts < settings.ALERTS_MAX_ATTEMPTS:
            state, next_attempt_at = BudgetAlert.State.PENDING, now + alert_services.backoff(alert.attempts)
        else:
            state, next_attempt_at = BudgetAlert.State.FAILED, None
        BudgetAlert.objects.filter(pk=pk, state=BudgetAlert.State.SENDING).update(
            state=state,
            next_attempt_at=next_attempt_at,
            claimed_at=None,
            told=alert.told,
            sent_at=timezone.now() if state == BudgetAlert.State.SENT else None,
            last_error="; ".join(errors)[:2000],
        )
    return sent


def process(now: datetime | None = None) -> str:
    now = now or timezone.now()
    noticed = notice(now)
    sent = send_pending(now)
    return f"{noticed} budget alerts noticed, {sent} sent"
