"""The query plans bench_year.py checks at a year's size: every sort and filter of the list, the
detail page's history, the row poll, and housekeeping's own reads and deletes, each EXPLAINed on the
database at hand (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN). A plan that reads a whole large
table is flagged, unless the query is one that must (free-text search, a count over everything) and
is cached or rare; that reason is then given. Not a benchmark itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Tables whose full scan would grow with the year.
LARGE = (
    "batches_batch",
    "batches_progresssnapshot",
    "batches_batchstatuschange",
    "alerts_delivery",
    "alerts_webhookreceipt",
    "accounts_auditevent",
    "django_session",
)


@dataclass
class Plan:
    name: str
    plan: str
    scans: list[str]
    expected: str = ""  # why a scan is acceptable here

    @property
    def ok(self) -> bool:
        return not self.scans or bool(self.expected)


def _scans(vendor: str, plan: str) -> list[str]:
    if vendor == "sqlite":
        # "SCAN t" reads every row; "SCAN t USING (COVERING) INDEX i" reads every entry of an index.
        found = re.findall(r"SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?", plan)
        return [
            f"{table} (whole {'index ' + index if index else 'table'})"
            for table, index in found
            if table in LARGE
        ]
    return [table for table in re.findall(r"Seq Scan on (\w+)", plan) if table in LARGE]


def _explain(queryset: Any) -> str:
    return str(queryset.explain())


def checks(now: datetime, old_pk: int, running_pk: int) -> list[tuple[str, Callable[[], Any], str]]:
    """(name, a function giving the queryset, why a full scan is acceptable or "")."""
    from axes.models import AccessAttempt, AccessLog
    from django.contrib.sessions.models import Session
    from django.db.models import Count
    from django.http import QueryDict

    from accounts.models import AuditEvent
    from alerts.models import Delivery, WebhookReceipt
    from batches import history, selectors
    from batches.models import Batch, BatchStatusChange, ProgressSnapshot

    def page(query: str) -> Any:
        filters = selectors.BatchFilters.from_query(QueryDict(query))
        sort = selectors.SORTS[filters.sort]
        return filters.apply(selectors._row_queryset()).order_by(*selectors._order_by(sort))[
            : selectors.PAGE_SIZE + 1
        ]

    def after(query: str) -> Any:
        filters = selectors.BatchFilters.from_query(QueryDict(query))
        sort = selectors.SORTS[filters.sort]
        ordered = filters.apply(Batch.objects.all()).order_by(*selectors._order_by(sort))
        last = ordered[min(500, ordered.count() - 1)]
        values = [getattr(last, column) for column, _ in sort]
        rows = filters.apply(selectors._row_queryset()).order_by(*selectors._order_by(sort))
        return rows.filter(selectors._after(sort, values))[: selectors.PAGE_SIZE + 1]

    day = (now - timedelta(days=30)).date().isoformat()
    found: list[tuple[str, Callable[[], Any], str]] = []
    for sort in selectors.SORTS:
        found.append((f"list, sort={sort}", lambda s=sort: page(f"sort={s}"), ""))
        found.append((f"list, sort={sort}, next page (cursor)", lambda s=sort: after(f"sort={s}"), ""))
    for query, why in (
        ("status=in_progress", ""),
        ("status=completed&sort=progress", ""),
        ("status=failed&status=expired", ""),
        ("connection=prod-eu", ""),
        ("endpoint=/v1/embeddings", ""),
        ("model=gpt-4o", ""),
        (f"created_from={day}", ""),
        (f"created_from={day}&created_to={day}", ""),
        (
            "meta=project=project-evals",
            "a metadata key=value filter reads the JSON of rows in creation order "
            "until a page is found (no index on JSON keys)",
        ),
        ("q=run-42", "free-text search reads rows in creation order until a page is found"),
    ):
        found.append((f"list, {query}", lambda q=query: page(q), why))
    counts = selectors.BatchFilters()
    found += [
        (
            "status counts (cached 5 s)",
            lambda: (
                counts.apply(Batch.objects.all(), with_status=False)
                .values("status")
                .annotate(n=Count("id"))
                .order_by()
            ),
            "counts every batch (an index-only scan), cached for 5 s",
        ),
        (
            "filter menus: endpoints (cached 60 s)",
            lambda: (
                Batch.objects.exclude(endpoint="")
                .values_list("endpoint", flat=True)
                .distinct()
                .order_by("endpoint")
            ),
            "distinct over an index, cached for a minute",
        ),
        (
            "outcomes of 7 days (cached 60 s)",
            lambda: _outcomes(history, now),
            "an aggregate over the week's finished batches, cached for a minute",
        ),
        (
            "detail: the history (old batch)",
            lambda: (
                ProgressSnapshot.objects.filter(batch_id=old_pk)
                .order_by("taken_at", "id")
                .values_list("taken_at", "completed", "failed", "total")
            ),
            "",
        ),
        (
            "detail: the history (running batch)",
            lambda: (
                ProgressSnapshot.objects.filter(batch_id=running_pk)
                .order_by("taken_at", "id")
                .values_list("taken_at", "completed", "failed", "total")
            ),
            "",
        ),
        ("detail: status changes", lambda: BatchStatusChange.objects.filter(batch_id=old_pk), ""),
        ("row poll", lambda: selectors._row_queryset().filter(pk=running_pk), ""),
        (
            "housekeeping: expired sessions",
            lambda: Session.objects.filter(expire_date__lt=now).values_list("pk", flat=True)[:1000],
            "",
        ),
        (
            "housekeeping: finished batches to thin",
            lambda: (
                Batch.objects.filter(is_terminal=True, snapshots_thinned_at__isnull=True, pk__gt=0)
                .order_by("pk")
                .values_list("pk", "in_progress_at")[:50]
            ),
            "",
        ),
        (
            "housekeeping: a batch's snapshots",
            lambda: (
                ProgressSnapshot.objects.filter(batch_id=old_pk)
                .order_by("taken_at", "id")
                .values_list("id", "taken_at", "completed", "failed", "total")
            ),
            "",
        ),
        (
            "housekeeping: snapshots by id (delete)",
            lambda: ProgressSnapshot.objects.filter(pk__in=list(range(1, 1001))),
            "",
        ),
        (
            "housekeeping: webhook receipts",
            lambda: WebhookReceipt.objects.filter(received_at__lt=now - timedelta(days=3)).values_list(
                "pk", flat=True
            )[:1000],
            "",
        ),
        (
            "housekeeping: alert deliveries",
            lambda: Delivery.objects.filter(
                state__in=("sent", "failed"), created_at__lt=now - timedelta(days=90)
            ).values_list("pk", flat=True)[:1000],
            "",
        ),
        (
            "housekeeping: audit events",
            lambda: AuditEvent.objects.filter(at__lt=now - timedelta(days=400)).values_list("pk", flat=True)[
                :1000
            ],
            "",
        ),
        (
            "housekeeping: axes attempts",
            lambda: AccessAttempt.objects.filter(attempt_time__lt=now).values_list("pk", flat=True)[:1000],
            "django-axes' table: a handful of rows at any time",
        ),
        (
            "housekeeping: axes sign-in logs",
            lambda: AccessLog.objects.filter(attempt_time__lt=now).values_list("pk", flat=True)[:1000],
            "django-axes' table (no index on attempt_time): a row per "
            "sign-in, about 15 a working day, kept 12 hours",
        ),
    ]
    return found


def _outcomes(history: Any, now: datetime) -> Any:
    from django.db.models import Count
    from django.db.models.functions import Coalesce, TruncDate

    from batches.models import Batch
    from batches.statuses import STATUS_TIMESTAMP_FIELD, TERMINAL_STATUSES

    start = now - timedelta(days=7)
    return (
        Batch.objects.filter(status__in=TERMINAL_STATUSES)
        .alias(finished_at=Coalesce(*(STATUS_TIMESTAMP_FIELD[s] for s in TERMINAL_STATUSES)))
        .filter(finished_at__gte=start)
        .annotate(day=TruncDate("finished_at"))
        .values("day", "status")
        .annotate(n=Count("id"))
        .order_by()
    )


def explain_all(now: datetime, old_pk: int, running_pk: int) -> list[Plan]:
    from django.db import connection

    plans = []
    for name, make, why in checks(now, old_pk, running_pk):
        text = _explain(make())
        scans = _scans(connection.vendor, text)
        plans.append(Plan(name, text, scans, why if scans else ""))
    return plans


def markdown(vendor: str, plans: list[Plan]) -> str:
    lines = [f"### {vendor}", ""]
    for plan in plans:
        verdict = (
            "index"
            if not plan.scans
            else (
                "scan, expected: " + plan.expected
                if plan.expected
                else "**SCAN: " + ", ".join(plan.scans) + "**"
            )
        )
        lines += [
            f"- **{plan.name}**: {verdict}",
            "",
            "  ```",
            *("  " + line for line in plan.plan.splitlines()),
            "  ```",
            "",
        ]
    return "\n".join(lines)
