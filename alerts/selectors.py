"""Reads of the alerts app: the metrics, the failures page, the channels page."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from alerts.exposition import Family
from alerts.models import Channel, Delivery
from batches.models import KNOWN_STATUSES, Batch, Connection

PREFIX = "batch_dashboard"
TOKEN_KINDS = ("input", "cached", "output", "reasoning", "total")


def find_connection(ref: str) -> Connection | None:
    """A connection by name, or else by id (names win: a connection may well be called "2")."""
    if "\x00" in ref:  # no name holds one, and PostgreSQL refuses it in a query
        return None
    connection = Connection.objects.filter(name=ref).first()
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if connection is None and ref.isdecimal():
        connection = Connection.objects.filter(pk=int(ref)).first()
    return connection


def _seconds(moment: datetime | None) -> float:
    return moment.timestamp() if moment else 0.0


def metric_families(now: datetime) -> list[Family]:
    connections = list(Connection.objects.order_by("name"))
    names = [c.name for c in connections]

    batches = Family(f"{PREFIX}_batches", "Batches the dashboard knows, by connection and status.")
    counts = {
        (row["connection__name"], row["status"]): row["n"]
        for row in Batch.objects.values("connection__name", "status").annotate(n=Count("id"))
    }
    # Every known status of every connection, zero or not, so that a rule never sees a series vanish.
    for name in names:
        for status in KNOWN_STATUSES:
            batches.add(counts.pop((name, status), 0), connection=name, status=status)
    for (name, status), n in sorted(counts.items()):  # statuses the API added after this code
        batches.add(n, connection=name, status=status)

    requests = Family(
        f"{PREFIX}_active_requests",
        "Requests of the batches not yet finished, by connection and kind (total, completed, failed).",
    )
    active = {
        row["connection__name"]: row
        for row in Batch.objects.filter(is_terminal=False)
        .values("connection__name")
        .annotate(
            total=Sum("total_requests"), completed=Sum("completed_requests"), failed=Sum("failed_requests")
        )
    }
    for name in names:
        row = active.get(name, {})
        for kind in ("total", "completed", "failed"):
            requests.add(row.get(kind) or 0, connection=name, kind=kind)

    tokens = Family(
        f"{PREFIX}_tokens", "Tokens used by all the batches the dashboard knows, by connection and kind."
    )
    used = {
        row["connection__name"]: row
        for row in Batch.objects.values("connection__name").annotate(
            **{kind: Sum(f"{kind}_tokens") for kind in TOKEN_KINDS}
        )
    }
    for name in names:
        row = used.get(name, {})
        for kind in TOKEN_KINDS:
            tokens.add(row.get(kind) or 0, connection=name, kind=kind)

    after = timedelta(minutes=settings.STALLED_AFTER_MINUTES)
    running = Batch.objects.filter(status="in_progress", is_terminal=False)
    stalled_counts = dict(
        running.alias(since=Coalesce("last_progress_at", "in_progress_at"))
        .filter(since__lt=now - after)
        .values("connection__name")
        .annotate(n=Count("id"))
        .values_list("connection__name", "n")
    )
    at_risk_counts = dict(
        running.filter(eta_at__gt=F("expires_at"))
        .values("connection__name")
        .annotate(n=Count("id"))
        .values_list("connection__name", "n")
    )
    stalled = Family(f"{PREFIX}_stalled_batches", "In-progress batches with no finished request for a while.")
    at_risk = Family(f"{PREFIX}_at_risk_batches", "In-progress batches expected to finish after they expire.")

    enabled = Family(f"{PREFIX}_connection_enabled", "1 if the dashboard syncs this connection.")
    lag = Family(
        f"{PREFIX}_sync_lag_seconds", "Seconds since the last successful sync; +Inf if it never succeeded."
    )
    last_success = Family(
        f"{PREFIX}_last_sync_success_timestamp_seconds", "When the last sync succeeded; 0 if never."
    )
    failures = Family(f"{PREFIX}_api_consecutive_failures", "API calls failed in a row, per connection.")
    last_error = Family(f"{PREFIX}_api_last_error_timestamp_seconds", "When the API last failed; 0 if never.")
    for connection in connections:
        name = connection.name
        stalled.add(stalled_counts.get(name, 0), connection=name)
        at_risk.add(at_risk_counts.get(name, 0), connection=name)
        enabled.add(1 if connection.enabled else 0, connection=name)
        since = (now - connection.last_success_at).total_seconds() if connection.last_success_at else math.inf
        lag.add(max(since, 0.0), connection=name)
        last_success.add(_seconds(connection.last_success_at), connection=name)
        failures.add(connection.consecutive_failures, connection=name)
        last_error.add(_seconds(connection.last_error_at), connection=name)

    notifications = Family(f"{PREFIX}_notifications", "Notifications by channel kind and state.")
    retrying = Family(
        f"{PREFIX}_notifications_retrying", "Notifications waiting to be retried after a failed attempt."
    )
    by_state = {
        (row["channel__kind"], row["state"]): row
        for row in Delivery.objects.values("channel__kind", "state").annotate(
            n=Count("id"), retrying=Count("id", filter=Q(attempts__gt=0))
        )
    }
    for kind in Channel.Kind.values:
        for state in Delivery.State.values:
            notifications.add(by_state.get((kind, state), {}).get("n", 0), channel_kind=kind, state=state)
        retrying.add(by_state.get((kind, Delivery.State.PENDING), {}).get("retrying", 0), channel_kind=kind)

    return [
        batches, requests, tokens, stalled, at_risk, enabled, lag, last_success, failures, last_error,
        notifications, retrying,
    ]  # fmt: skip


def deliveries_needing_attention() -> QuerySet[Delivery]:
    """Given up, or waiting for a retry after a failure: what the admin failures page lists."""
    return (
        Delivery.objects.select_related("channel", "batch", "batch__connection")
        .filter(Q(state=Delivery.State.FAILED) | Q(state=Delivery.State.PENDING, attempts__gt=0))
        .order_by("-created_at", "-id")
    )


def channels_for(user: AbstractBaseUser, *, admin: bool) -> QuerySet[Channel]:
    """A user's own channels; an admin also sees the team channels (those of no user)."""
    mine = Q(user=user) | Q(user__isnull=True) if admin else Q(user=user)
    return Channel.objects.select_related("connection", "user").filter(mine).order_by("id")
