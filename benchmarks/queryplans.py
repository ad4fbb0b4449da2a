"""The query plans bench_year.py checks at a year's size: every sort and filter of the list, the
detail page's history, the row poll, and housekeeping's own reads and deletes, each EXPLAINed on the
database at hand (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN). Each query names the index it
should use; its check fails when the plan does not use it or reads a whole large table. Some queries
read more than a page's worth by nature (free-text search, counts); they say why that is acceptable.
Not a benchmark itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
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
# Below this many batches PostgreSQL rightly prefers sequential scans of its small tables; they are
# then discouraged, so that the plan shown is the one a year's size gets.
SMALL = 50_000
PK = ("INTEGER PRIMARY KEY", "_pkey")
NEWEST = "batch_newest_first"


@dataclass
class Plan:
    name: str
    plan: str
    expected: tuple[str, ...]  # any of these in the plan: the index meant for it
    note: str = ""  # why reading more than a page is acceptable here
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Check:
    name: str
    make: Callable[[], Any]
    expected: tuple[str, ...]
    note: str = ""
    in_order: bool = False  # a page of the list: read from the index in order, never sorted whole


def _problems(vendor: str, plan: str, expected: tuple[str, ...], in_order: bool = False) -> list[str]:
    problems = []
    if expected and not any(name in plan for name in expected):
        problems.append(f"does not use {' or '.join(expected)}")
    if in_order and ("USE TEMP B-TREE FOR ORDER BY" in plan or "Sort Key" in plan):
        problems.append("sorts every match")
    if vendor == "sqlite":
        whole = [t for t in re.findall(r"SCAN (\w+)(?! USING)", plan) if t in LARGE]
    else:
        whole = [t for t in re.findall(r"Seq Scan on (\w+)", plan) if t in LARGE]
    problems += [f"reads all of {table}" for table in whole]
    return problems


def _page(query: str) -> Any:
    from django.http import QueryDict

    from batches import selectors

    filters = selectors.BatchFilters.from_query(QueryDict(query))
    ordered = filters.apply(selectors._row_queryset()).order_by(
        *selectors._order_by(selectors.SORTS[filters.sort])
    )
    return ordered[: selectors.PAGE_SIZE + 1]


def _next_page(query: str) -> Any:
    """The page after 500 rows, through the keyset cursor."""
    from django.http import QueryDict

    from batches import selectors
    from batches.models import Batch

    filters = selectors.BatchFilters.from_query(QueryDict(query))
    sort = selectors.SORTS[filters.sort]
    ordered = filters.apply(Batch.objects.all()).order_by(*selectors._order_by(sort))
    last = ordered[min(500, ordered.count() - 1)]
    rows = filters.apply(selectors._row_queryset()).order_by(*selectors._order_by(sort))
    return rows.filter(selectors._after(sort, [getattr(last, c) for c, _ in sort]))[: selectors.PAGE_SIZE + 1]


SORT_INDEX = {
    "created": "batch_newest_first",
    "-created": "batch_newest_first",
    "status": "batch_status_created",
    "progress": "batch_progress",
    "-progress": "batch_progress",
}


def checks(now: datetime, old_pk: int, running_pk: int) -> list[Check]:
    from axes.models import AccessAttempt, AccessLog
    from django.contrib.sessions.models import Session
    from django.db.models import Count

    from accounts.models import AuditEvent
    from alerts.models import Delivery, WebhookReceipt
    from batches import selectors
    from batches.models import Batch, BatchStatusChange, ProgressSnapshot

    day = (now - timedelta(days=30)).date().isoformat()
    found = []
    for sort, index in SORT_INDEX.items():
        found.append(Check(f"list, sort={sort}", partial(_page, f"sort={sort}"), (index,), in_order=True))
        # The cursor's OR of ranges may be served by any index that leads with the first sort column.
        found.append(
            Check(
                f"list, sort={sort}, a later page",
                partial(_next_page, f"sort={sort}"),
                (index, "batch_status_progress"),
            )
        )
    for query, expected, note in (
        ("status=in_progress", ("batch_status_created",), ""),
        # Most batches are completed: walking the progress index and skipping the rest serves as well.
        ("status=completed&sort=progress", ("batch_status_progress", "batch_progress"), ""),
        # A filter that many rows pass may as well walk the newest-first index until a page is found.
        ("status=failed&status=expired", ("batch_status_created", "batch_status_progress", NEWEST), ""),
        ("connection=prod-eu", ("batch_connection_created", NEWEST), ""),
        ("endpoint=/v1/embeddings", ("batch_endpoint_created", NEWEST), ""),
        ("model=gpt-4o", ("batch_model_created", NEWEST), ""),
        (f"created_from={day}", ("batch_newest_first",), ""),
        (f"created_from={day}&created_to={day}", ("batch_newest_first",), ""),
        (
            "meta=project=project-evals",
            (),
            "JSON keys have no index: rows are read (newest first, or all and then sorted, as the planner "
            "guesses how many match) until a page is found",
        ),
        ("q=run-42", (), "free text has no index: rows are read until a page matches (or all, then sorted)"),
    ):
        # Two statuses are two ranges of an index: merged, they need a sort of their matches.
        in_order = query.count("status=") < 2 and not note
        found.append(Check(f"list, {query}", partial(_page, query), expected, note, in_order=in_order))
    everything = selectors.BatchFilters()
    snapshots_of = partial(_snapshots, ProgressSnapshot)
    found += [
        Check(
            "status counts (cached 5 s)",
            lambda: (
                everything.apply(Batch.objects.all(), with_status=False)
                .values("status")
                .annotate(n=Count("id"))
                .order_by()
            ),
            (),
            "counts every batch, cached for 5 s",
        ),
        Check(
            "filter menu: endpoints (cached 60 s)",
            lambda: (
                Batch.objects.exclude(endpoint="")
                .values_list("endpoint", flat=True)
                .distinct()
                .order_by("endpoint")
            ),
            ("batch_endpoint_created",),
            "distinct values, cached for a minute",
        ),
        Check(
            "outcomes of 7 days (cached 60 s)",
            partial(_outcomes, now),
            # SQLite's planner may keep reading the finished batches by status instead (the chart is
            # cached for a minute).
            ("batch_finished_at", "batch_status"),
            "a week's finished batches, cached for a minute",
        ),
        Check(
            "detail: the history of an old batch",
            partial(snapshots_of, old_pk),
            ("one_snapshot_per_count", "sqlite_autoindex_batches_progresssnapshot"),
        ),
        Check(
            "detail: the history of a running batch",
            partial(snapshots_of, running_pk),
            ("one_snapshot_per_count", "sqlite_autoindex_batches_progresssnapshot"),
        ),
        Check(
            "detail: status changes",
            lambda: BatchStatusChange.objects.filter(batch_id=old_pk),
            (
                "batchstatuschange_batch_id",
                "one_change_per_status",
                "sqlite_autoindex_batches_batchstatuschange",
            ),
        ),
        Check("row poll", lambda: selectors._row_queryset().filter(pk=running_pk), PK),
        Check(
            "housekeeping: expired sessions",
            lambda: Session.objects.filter(expire_date__lt=now).values_list("pk", flat=True)[:1000],
            (),
            "housekeeping keeps the table to the last hours' sessions, a few dozen rows: reading them all is "
            "the planner's right choice (django_session_expire_date serves it when they are many)",
        ),
        Check(
            "housekeeping: finished batches to thin",
            lambda: (
                Batch.objects.filter(is_terminal=True, snapshots_thinned_at__isnull=True, pk__gt=0)
                .order_by("pk")
                .values_list("pk", "in_progress_at")[:50]
            ),
            ("batch_snapshots_to_thin",),
        ),
        Check(
            "housekeeping: a batch's snapshots",
            partial(snapshots_of, old_pk),
            ("one_snapshot_per_count", "sqlite_autoindex_batches_progresssnapshot"),
        ),
        Check(
            "housekeeping: snapshots by id (delete)",
            lambda: ProgressSnapshot.objects.filter(pk__in=list(range(1, 1001))),
            PK,
        ),
        Check(
            "housekeeping: webhook receipts",
            lambda: WebhookReceipt.objects.filter(received_at__lt=now - timedelta(days=3)).values_list(
                "pk", flat=True
            )[:1000],
            ("alerts_webhookreceipt_received_at",),
        ),
        Check(
            "housekeeping: alert deliveries",
            # Unordered, as housekeeping's _delete_in_chunks asks (Delivery's default ordering made
            # PostgreSQL sort every match first).
            lambda: (
                Delivery.objects.filter(state__in=("sent", "failed"), created_at__lt=now - timedelta(days=90))
                .order_by()
                .values_list("pk", flat=True)[:1000]
            ),
            ("delivery_state_created",),
        ),
        Check(
            "housekeeping: audit events",
            lambda: AuditEvent.objects.filter(at__lt=now - timedelta(days=400)).values_list("pk", flat=True)[
                :1000
            ],
            ("accounts_auditevent_at",),
        ),
        Check(
            "housekeeping: axes attempts",
            lambda: AccessAttempt.objects.filter(attempt_time__lt=now).values_list("pk", flat=True)[:1000],
            (),
            "django-axes' table of failures within their cool-off: a handful of rows",
        ),
        Check(
            "housekeeping: axes sign-in logs",
            lambda: AccessLog.objects.filter(attempt_time__lt=now).values_list("pk", flat=True)[:1000],
            (),
            "django-axes' table, no index on attempt_time: one row per sign-in, kept 12 hours",
        ),
    ]
    return found


def _snapshots(model: Any, pk: int) -> Any:
    return (
        model.objects.filter(batch_id=pk)
        .order_by("taken_at", "id")
        .values_list("id", "taken_at", "completed", "failed", "total")
    )


def _outcomes(now: datetime) -> Any:
    from django.db.models import Count
    from django.db.models.functions import Coalesce, TruncDate

    from batches.models import Batch
    from batches.statuses import STATUS_TIMESTAMP_FIELD, TERMINAL_STATUSES

    return (
        Batch.objects.filter(status__in=TERMINAL_STATUSES)
        .alias(finished_at=Coalesce(*(STATUS_TIMESTAMP_FIELD[s] for s in TERMINAL_STATUSES)))
        .filter(finished_at__gte=now - timedelta(days=7))
        .annotate(day=TruncDate("finished_at"))
        .values("day", "status")
        .annotate(n=Count("id"))
        .order_by()
    )


def explain_all(now: datetime, old_pk: int, running_pk: int) -> list[Plan]:
    from django.db import connection, transaction

    from batches.models import Batch

    discourage = connection.vendor == "postgresql" and Batch.objects.count() < SMALL
    plans = []
    for check in checks(now, old_pk, running_pk):
        with transaction.atomic():
            if discourage:
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL enable_seqscan = off")
            text = str(check.make().explain())
        problems = _problems(connection.vendor, text, check.expected, check.in_order)
        if check.note:  # reading more is in its nature (the note says why); the index is still checked
            problems = [problem for problem in problems if not problem.startswith("reads all")]
        plans.append(Plan(check.name, text, check.expected, check.note, problems))
    return plans


def markdown(vendor: str, plans: list[Plan], *, discouraged: bool) -> str:
    lines = [f"### {vendor}", ""]
    if discouraged:
        lines += [
            "(A small run: sequential scans were discouraged, so that these are the plans of a year's size.)",
            "",
        ]
    for plan in plans:
        if plan.problems:
            verdict = "**" + "; ".join(plan.problems) + "**"
        elif plan.note:
            verdict = f"accepted: {plan.note}"
        else:
            verdict = f"uses {' or '.join(plan.expected)}"
        lines += [f"- **{plan.name}**: {verdict}", "", "  ```"]
        lines += ["  " + line for line in plan.plan.splitlines()]
        lines += ["  ```", ""]
    return "\n".join(lines)
