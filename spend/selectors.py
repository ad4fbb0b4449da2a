"""Reads of the spend app: totals for a period grouped by connection, model, endpoint or a metadata key;
the batches nobody can price; each budget's state this month; the families of /metrics."""

from __future__ import annotations

import calendar
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import BigIntegerField, Count, F, Func, Q, QuerySet, Sum, TextField, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_date

from batches.models import Batch, Connection
from spend import costs, money
from spend.models import BatchSpend, Budget, Price
from spend.money import dollars
from spend.prices import PriceBook

PERIODS = {"day": "Day", "week": "Week", "month": "Month", "custom": "Custom range"}
GROUPS = {"connection": "Connection", "model": "Model", "endpoint": "Endpoint", "metadata": "Metadata key"}
NONE_LABEL = "(none)"
MAX_CUSTOM_DAYS = 366
_KEY = re.compile(r"^[\w.\-:/ ]{1,64}$")


def _day(value: str) -> date | None:
    try:
        return parse_date(value) if value else None
    except ValueError:  # well formed but impossible, like 2026-02-31
        return None


@dataclass(frozen=True)
class SpendQuery:
    """What the spend page shows, parsed strictly from the query string: bad values are dropped and
    said, never a 500."""

    period: str = "month"
    on: date = field(default_factory=timezone.localdate)
    start: date | None = None  # custom range, both days included
    end: date | None = None
    group: str = "connection"
    key: str = ""
    invalid: tuple[str, ...] = ()

    @classmethod
    def from_query(cls, query: QueryDict) -> SpendQuery:
        def one(name: str) -> str:
            values = query.getlist(name)
            return values[-1].replace("\x00", "").strip()[:100] if values else ""

        invalid: list[str] = []
        period = one("period") or "month"
        if period not in PERIODS:
            invalid.append(f"unknown period {period[:20]!r}")
            period = "month"
        on = _day(one("on"))
        if one("on") and on is None:
            invalid.append(f"date {one('on')[:20]!r} is not YYYY-MM-DD")
        start, end = _day(one("start")), _day(one("end"))
        if period == "custom":
            if start is None or end is None:
                invalid.append("a custom range needs a start and an end date (YYYY-MM-DD)")
                period, start, end = "month", None, None
            elif end < start:
                start, end = end, start
            if start and end and (end - start).days > MAX_CUSTOM_DAYS:
                invalid.append(f"a custom range is at most {MAX_CUSTOM_DAYS} days; shortened")
                start = end - timedelta(days=MAX_CUSTOM_DAYS)
        group = one("group") or "connection"
        if group not in GROUPS:
            invalid.append(f"unknown grouping {group[:20]!r}")
            group = "connection"
        key = one("key")[:64]
        if group == "metadata" and not _KEY.match(key):
            invalid.append("grouping by metadata needs a key (letters, digits, . - _ : /)")
            group, key = "connection", ""
        return cls(
            period=period,
            on=on or timezone.localdate(),
            start=start if period == "custom" else None,
            end=end if period == "custom" else None,
            group=group,
            key=key if group == "metadata" else "",
            invalid=tuple(invalid),
        )

    def days(self) -> tuple[date, date]:
        """The first and the last day of the period, both included."""
        if self.period == "custom" and self.start and self.end:
            return self.start, self.end
        if self.period == "day":
            return self.on, self.on
        if self.period == "week":
            monday = self.on - timedelta(days=self.on.weekday())
            return monday, monday + timedelta(days=6)
        last = calendar.monthrange(self.on.year, self.on.month)[1]
        return self.on.replace(day=1), self.on.replace(day=last)

    def bounds(self) -> tuple[datetime, datetime]:
        first, last = self.days()
        zone = timezone.get_current_timezone()
        return (
            datetime.combine(first, time.min, tzinfo=zone),
            datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone),
        )

    @property
    def hourly(self) -> bool:
        return self.period == "day"

    @property
    def group_label(self) -> str:
        return f"metadata {self.key}" if self.group == "metadata" else GROUPS[self.group].lower()

    def shifted(self, direction: int) -> date:
        """The `on` of the period before (-1) or after (+1)."""
        first, last = self.days()
        if self.period == "month":
            if direction < 0:
                return first - timedelta(days=1)
            return last + timedelta(days=1)
        return self.on + timedelta(days=direction * (1 if self.period == "day" else 7))


class MetadataText(Func):
    """metadata's value under one key, as text; NULL without it. One JSON function per row: Django's
    KeyTextTransform runs three on SQLite (it tells JSON true, false and null apart from text, which
    metadata, a map of strings, never holds), and the spend page runs it on every batch of a period."""

    output_field: TextField = TextField()

    def __init__(self, key: str) -> None:
        super().__init__(F("metadata"), Value(key))
        self.key = key

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        column, params = compiler.compile(self.source_expressions[0])
        return f"JSON_EXTRACT({column}, %s)", [*params, "$." + json.dumps(self.key)]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} ->> %s)", [*params, self.key]


def _group_expression(query: SpendQuery) -> Any:
    if query.group == "connection":
        return F("connection__name")
    if query.group == "metadata":
        # KeyTextTransform takes the key literally (as the list's metadata filter does); a batch without
        # the key (or without metadata) gives NULL, shown as "(none)".
        return MetadataText(query.key)
    return F(query.group)


@dataclass(frozen=True)
class SpendRow:
    """One group of the table, and of the CSV (both read these same strings)."""

    group: str
    batches: int
    micros: int
    unpriced: int  # batches with usage but no price: not in `micros`
    share: float  # of the period's priced total, 0..1

    @property
    def cost_text(self) -> str:
        return dollars(self.micros)

    @property
    def share_text(self) -> str:
        return f"{self.share * 100:.1f} %"


@dataclass(frozen=True)
class Unpriced:
    model: str
    batches: int


@dataclass(frozen=True)
class SpendReport:
    query: SpendQuery
    rows: list[SpendRow]
    total_micros: int
    batches: int
    buckets: list[datetime]
    # (bucket, group) -> micro-dollars, for the chart
    series: dict[tuple[datetime, str], int]
    unpriced: list[Unpriced]

    @property
    def total_text(self) -> str:
        return dollars(self.total_micros)


def _hour(moment: datetime) -> int:
    return int(moment.timestamp()) // 3600


def _period_batches(query: SpendQuery) -> QuerySet[BatchSpend]:
    start, end = query.bounds()
    return BatchSpend.objects.filter(created_hour__gte=_hour(start), created_hour__lt=_hour(end))


_UNPRICED = Q(cost_micros__isnull=True, has_usage=True)


def spend_report(query: SpendQuery) -> SpendReport:
    """One aggregate query by (time bucket, group), from which the table's totals are summed; a second
    for the unpriced models only when there are some.

    Buckets are whole hours or days counted in hours from the period's start (BatchSpend.created_hour),
    so in a zone with daylight-saving time a day bucket is off by an hour across the change, and in a
    zone half an hour off UTC by half an hour (the default zone is UTC)."""
    start, _ = query.bounds()
    bucket = CombinedExpression(
        CombinedExpression(F("created_hour"), "-", Value(_hour(start)), output_field=BigIntegerField()),
        "/",
        Value(1 if query.hourly else 24),
        output_field=BigIntegerField(),
    )
    rows = (
        _period_batches(query)
        .annotate(bucket=bucket, group_value=_group_expression(query))
        .values("bucket", "group_value")
        .annotate(
            micros=Coalesce(Sum("cost_micros"), Value(0)),
            n=Count("pk"),
            unpriced=Count("pk", filter=_UNPRICED),
        )
        .order_by()
    )
    buckets = _buckets(query)
    per_group: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    series: dict[tuple[datetime, str], int] = defaultdict(int)
    for row in rows:
        group = row["group_value"]
        name = NONE_LABEL if group is None or group == "" else str(group)
        totals = per_group[name]
        totals[0] += row["n"]
        totals[1] += row["micros"]
        totals[2] += row["unpriced"]
        index = row["bucket"]
        if row["micros"] and index is not None and 0 <= index < len(buckets):
            series[(buckets[index], name)] += row["micros"]
    total = sum(t[1] for t in per_group.values())
    table = sorted(
        (SpendRow(name, t[0], t[1], t[2], t[1] / total if total else 0.0) for name, t in per_group.items()),
        key=lambda r: (-r.micros, r.group),
    )
    unpriced = []
    if any(t[2] for t in per_group.values()):
        unpriced = [
            Unpriced(row["model"] or "(no model)", row["n"])
            for row in _period_batches(query)
            .filter(_UNPRICED)
            .values("model")
            .annotate(n=Count("pk"))
            .order_by("-n", "model")
        ]
    return SpendReport(
        query=query,
        rows=table,
        total_micros=total,
        batches=sum(t[0] for t in per_group.values()),
        buckets=buckets,
        series=dict(series),
        unpriced=unpriced,
    )


def _buckets(query: SpendQuery) -> list[datetime]:
    start, end = query.bounds()
    step = timedelta(hours=1) if query.hourly else timedelta(days=1)
    found, moment = [], start
    while moment < end:
        found.append(moment)
        moment += step
    return found


def metadata_keys(limit: int = 30) -> list[str]:
    """Keys the grouping menu offers: those of the newest batches (a scan of all would cost a page load)."""
    keys: set[str] = set()
    for metadata in Batch.objects.order_by("-created_at").values_list("metadata", flat=True)[:500]:
        if isinstance(metadata, dict):
            keys.update(str(key) for key in metadata)
    return sorted(keys)[:limit]


# --- prices ------------------------------------------------------------------------------------


def prices() -> list[Price]:
    return list(
        Price.objects.select_related("connection", "updated_by").order_by("model", "connection__name")
    )


def price_or_none(pk: int) -> Price | None:
    return Price.objects.select_related("connection").filter(pk=pk).first() if 0 < pk < 2**63 else None


# --- budgets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetState:
    budget: Budget
    spent_micros: int
    projected_micros: int  # at this month's pace so far
    month: date

    @property
    def limit_micros(self) -> int:
        return int(self.budget.monthly_usd * 1_000_000)

    @property
    def used(self) -> float:
        return self.spent_micros / self.limit_micros if self.limit_micros else 0.0

    @property
    def used_pct(self) -> int:
        return int(self.used * 100)

    @property
    def bar_pct(self) -> str:
        return f"{min(self.used * 100, 100):.1f}%"

    @property
    def state(self) -> str:
        if self.used >= 1:
            return "over"
        if self.used >= 0.8:
            return "warning"
        if self.projected_micros > self.limit_micros:
            return "pace"
        return "ok"

    @property
    def label(self) -> str:
        return str(self.budget)

    @property
    def spent_text(self) -> str:
        return dollars(self.spent_micros)

    @property
    def projected_text(self) -> str:
        return dollars(self.projected_micros)


def month_bounds(now: datetime) -> tuple[date, datetime, datetime]:
    local = timezone.localtime(now)
    first = local.date().replace(day=1)
    last = calendar.monthrange(first.year, first.month)[1]
    zone = timezone.get_current_timezone()
    start = datetime.combine(first, time.min, tzinfo=zone)
    end = datetime.combine(first.replace(day=last) + timedelta(days=1), time.min, tzinfo=zone)
    return first, start, end


def budget_batches(budget: Budget) -> QuerySet[BatchSpend]:
    if budget.connection_id:
        return BatchSpend.objects.filter(connection_id=budget.connection_id)
    return BatchSpend.objects.alias(budget_value=MetadataText(budget.metadata_key)).filter(
        budget_value=budget.metadata_value
    )


def budget_state(budget: Budget, now: datetime) -> BudgetState:
    month, start, end = month_bounds(now)
    spent = (
        budget_batches(budget)
        .filter(created_hour__gte=_hour(start), created_hour__lt=_hour(end))
        .aggregate(total=Coalesce(Sum("cost_micros"), Value(0)))["total"]
    )
    elapsed = max((now - start).total_seconds(), 3600.0)  # the first hour says too little about a pace
    projected = int(spent * (end - start).total_seconds() / elapsed)
    return BudgetState(budget, spent, max(projected, spent), month)


def budget_states(now: datetime) -> list[BudgetState]:
    return [budget_state(budget, now) for budget in Budget.objects.select_related("connection")]


def budget_or_none(pk: int) -> Budget | None:
    return Budget.objects.filter(pk=pk).first() if 0 < pk < 2**63 else None


# --- /metrics ----------------------------------------------------------------------------------


def spend_by_connection_and_model() -> list[tuple[str, str, int]]:
    return [
        (row["connection__name"], row["model"], row["micros"])
        for row in BatchSpend.objects.filter(cost_micros__isnull=False)
        .values("connection__name", "model")
        .annotate(micros=Sum("cost_micros"))
        .order_by("connection__name", "model")
    ]


def connections() -> list[Connection]:
    return list(Connection.objects.order_by("name"))


# --- one batch ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostLine:
    kind: str
    tokens: int
    rate_text: str  # "$0.075 / M"
    cost_text: str


@dataclass(frozen=True)
class BatchCost:
    """The detail page's breakdown: each kind of token times its rate, the total, and for a running
    batch what it will cost at the end at the same cost per request."""

    total_text: str
    lines: list[CostLine]
    price_model: str
    override: bool
    so_far: bool
    projected_text: str


def _rate_text(rate_micros: int) -> str:
    return f"${rate_micros / 1_000_000:g} / M"


def batch_cost(batch: Batch) -> BatchCost | None:
    """None when the batch has no usage or no price (the page says which)."""
    found = costs.breakdown(batch, PriceBook.load())
    if found is None:
        return None
    total = batch.cost_micros if batch.cost_micros is not None else found.total_micros
    done = batch.completed_requests + batch.failed_requests
    projected = money.projected_micros(total, done, batch.total_requests) if batch.is_active else None
    return BatchCost(
        total_text=money.dollars(total),
        lines=[
            CostLine(
                "input",
                found.uncached_input_tokens,
                _rate_text(found.rates.input),
                money.dollars(round(found.input_micros)),
            ),
            CostLine(
                "cached input",
                found.cached_input_tokens,
                _rate_text(found.rates.cached_input),
                money.dollars(round(found.cached_micros)),
            ),
            CostLine(
                "output (with reasoning)",
                found.output_tokens,
                _rate_text(found.rates.output),
                money.dollars(round(found.output_micros)),
            ),
        ],
        price_model=found.rates.model,
        override=found.rates.override,
        so_far=batch.is_active,
        projected_text=money.dollars(projected) if projected is not None else "",
    )
