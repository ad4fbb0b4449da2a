"""Reads of the alerts app: the metrics, the failures page, the channels page."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from prometheus_client.core import GaugeMetricFamily

from alerts.models import Channel, Delivery
from batches.models import Batch, Connection
from batches.statuses import KNOWN_STATUSES

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


def metric_families(now: datetime) -> list[GaugeMetricFamily]:
    connections = list(Connection.objects.order_by("name"))
    names = [c.name for c in connections]

    batches = GaugeMetricFamily(
        f"{PREFIX}_batches",
        "Batches the dashboard knows, by connection and status.",
        labels=("connection", "status"),
    )
    counts = {
        (row["connection__name"], row["status"]): row["n"]
        for row in Batch.objects.values("connection__name", "status").annotate(n=Count("id"))
    }
    # Every known status of every connection, zero or not, so that a rule never sees a series vanish.
    for name in names:
        for status in KNOWN_STATUSES:
            batches.add_metric((name, status), counts.pop((name, status), 0))
    for (name, status), n in sorted(counts.items()):  # statuses the API added after this code
        batches.add_metric((name, status), n)

    requests = GaugeMetricFamily(
        f"{PREFIX}_active_requests",
        "Requests of the batches not yet finished, by connection and kind (total, completed, failed).",
        labels=("connection", "kind"),
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
            requests.add_metric((name, kind), row.get(kind) or 0)

    tokens = GaugeMetricFamily(
        f"{PREFIX}_tokens",
        "Tokens used by all the batches the dashboard knows, by connection and kind.",
        labels=("connection", "kind"),
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
            tokens.add_metric((name, kind), row.get(kind) or 0)

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
    per_connection = ("connection",)
    stalled = GaugeMetricFamily(
        f"{PREFIX}_stalled_batches",
        "In-progress batches with no finished request for a while.",
        labels=per_connection,
    )
    at_risk = GaugeMetricFamily(
        f"{PREFIX}_at_risk_batches",
        "In-progress batches expected to finish after they expire.",
        labels=per_connection,
    )

    enabled = GaugeMetricFamily(
        f"{PREFIX}_connection_enabled", "1 if the dashboard syncs this connection.", labels=per_connection
    )
    lag = GaugeMetricFamily(
        f"{PREFIX}_sync_lag_seconds",
        "Seconds since the last successful sync; +Inf if it never succeeded.",
        labels=per_connection,
    )
    last_success = GaugeMetricFamily(
        f"{PREFIX}_last_sync_success_timestamp_seconds",
        "When the last sync succeeded; 0 if never.",
        labels=per_connection,
    )
    failures = GaugeMetricFamily(
        f"{PREFIX}_api_consecutive_failures",
        "API calls failed in a row, per connection.",
        labels=per_connection,
    )
    last_error = GaugeMetricFamily(
        f"{PREFIX}_api_last_error_timestamp_seconds",
        "When the API last failed; 0 if never.",
        labels=per_connection,
    )
    for connection in connections:
        name = connection.name
        stalled.add_metric((name,), stalled_counts.get(name, 0))
        at_risk.add_metric((name,), at_risk_counts.get(name, 0))
        enabled.add_metric((name,), 1 if connection.enabled else 0)
        since = (now - connection.last_success_at).total_seconds() if connection.last_success_at else math.inf
        lag.add_metric((name,), max(since, 0.0))
        last_success.add_metric((name,), _seconds(connection.last_success_at))
        failures.add_metric((name,), connection.consecutive_failures)
        last_error.add_metric((name,), _seconds(connection.last_error_at))

    notifications = GaugeMetricFamily(
        f"{PREFIX}_notifications",
        "Notifications by channel kind and state.",
        labels=("channel_kind", "state"),
    )
    retrying = GaugeMetricFamily(
        f"{PREFIX}_notifications_retrying",
        "Notifications waiting to be retried after a failed attempt.",
        labels=("channel_kind",),
    )
    by_state = {
        (row["channel__kind"], row["state"]): row
        for row in Delivery.objects.values("channel__kind", "state").annotate(
            n=Count("id"), retrying=Count("id", filter=Q(attempts__gt=0))
        )
    }
    for kind in Channel.Kind.values:
        for state in Delivery.State.values:
            notifications.add_metric((kind, state), by_state.get((kind, state), {}).get("n", 0))
        retrying.add_metric((kind,), by_state.get((kind, Delivery.State.PENDING), {}).get("retrying", 0))

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


def channels_for(user: User, *, admin: bool) -> QuerySet[Channel]:
    """A user's own channels; an admin also sees the team channels (those of no user)."""
    mine = Q(user=user) | Q(user__isnull=True) if admin else Q(user=user)
    return Channel.objects.select_related("connection", "user").filter(mine).order_by("id")
