"""Reads for the pages: every query the views run lives here."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar, cast

from django.core.cache import cache
from django.db.models import Count, F, Q, QuerySet, Sum, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_date

from batches.connections import is_configured
from batches.models import Batch, Connection
from batches.statuses import KNOWN_STATUSES
from dashboard.prepared import PreparedQuery

PAGE_SIZE = 50
# Each sort is a sequence of (column, descending); the id breaks ties so that keyset pagination is exact.
SORTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "created": (("created_at", True), ("id", True)),
    "-created": (("created_at", False), ("id", False)),
    "status": (("status", False), ("created_at", True), ("id", True)),
    "progress": (("done_ratio", True), ("id", True)),
    "-progress": (("done_ratio", False), ("id", False)),
    "cost": (("cost_micros", True), ("id", True)),
    "-cost": (("cost_micros", False), ("id", False)),
}
SORT_LABELS = {
    "created": "Newest first",
    "-created": "Oldest first",
    "status": "Status",
    "progress": "Most done first",
    "-progress": "Least done first",
    "cost": "Most expensive first",
    "-cost": "Cheapest first",
}


@dataclass(frozen=True)
class BatchFilters:
    """What the list shows, parsed strictly from the query string; bad values are dropped, not 500s."""

    statuses: tuple[str, ...] = ()
    connection: str = ""
    endpoint: str = ""
    model: str = ""
    created_from: str = ""
    created_to: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    q: str = ""
    sort: str = "created"
    invalid: tuple[str, ...] = field(default=())

    @classmethod
    def from_query(cls, query: QueryDict) -> BatchFilters:
        def many(name: str) -> list[str]:
            # NUL bytes are dropped: PostgreSQL refuses them in text, and no real value holds one.
            return [value.replace("\x00", "").strip() for value in query.getlist(name)]

        def one(name: str, limit: int) -> str:
            values = many(name)
            return values[-1][:limit] if values else ""

        invalid: list[str] = []
        statuses = tuple(sorted({s[:40] for s in many("status") if s}))
        metadata: list[tuple[str, str]] = []
        for item in many("meta"):
            if "=" in item:
                key, _, value = item.partition("=")
                metadata.append((key.strip()[:64], value.strip()[:512]))
            elif item:
                invalid.append(f"metadata filter {item[:40]!r} is not key=value")
        dates: dict[str, str] = {}
        for name, label in (("created_from", "from"), ("created_to", "to")):
            value = one(name, 40)
            if value and _parse_day(value) is None:
                invalid.append(f"created {label} date {value[:20]!r} is not YYYY-MM-DD")
                value = ""
            dates[name] = value
        sort = one("sort", 40) or "created"
        if sort not in SORTS:
            invalid.append(f"unknown sort {sort[:20]!r}")
            sort = "created"
        return cls(
            statuses=statuses,
            connection=one("connection", 100),
            endpoint=one("endpoint", 200),
            model=one("model", 200),
            metadata=tuple(metadata),
            q=one("q", 200),
            sort=sort,
            invalid=tuple(invalid),
            **dates,
        )

    def apply(self, queryset: QuerySet[Batch], *, with_status: bool = True) -> QuerySet[Batch]:
        if with_status and self.statuses:
            queryset = queryset.filter(status__in=self.statuses)
        if self.connection:
            queryset = queryset.filter(connection__name=self.connection)
        if self.endpoint:
            queryset = queryset.filter(endpoint=self.endpoint)
        if self.model:
            queryset = queryset.filter(model=self.model)
        # Ranges on created_at itself rather than on its date (created_at__date), which the database
        # computes row by row: a range walks the newest-first index from where the days begin.
        if self.created_from and (start := _day_start(self.created_from)) is not None:
            queryset = queryset.filter(created_at__gte=start)
        if self.created_to and (end := _day_start(self.created_to, after=True)) is not None:
            queryset = queryset.filter(created_at__lt=end)
        for index, (key, value) in enumerate(self.metadata):
            # KeyTextTransform takes the key literally (a key like "a__b" is not a lookup path); the
            # cast makes the comparison a plain text one rather than a JSON one.
            alias = f"metadata_filter_{index}"
            queryset = queryset.alias(**{alias: Cast(KeyTextTransform(key, "metadata"), TextField())}).filter(
                **{alias: value}
            )
        if self.q:
            queryset = queryset.filter(Q(batch_id__icontains=self.q) | Q(metadata__icontains=self.q))
        return queryset


@dataclass(frozen=True)
class BatchPage:
    rows: list[Batch]
    next_cursor: str | None
    is_first_page: bool


# The primary keys a Batch can have (a BigAutoField). An id from a URL beyond them matches nothing;
# the prepared query would hand it to the database driver unchecked, which refuses it (a 500).
_PK_RANGE = range(1, 2**63)
_COST_RANGE = range(-(2**63), 2**63)


def _parse_day(value: str) -> date | None:
    try:
        return parse_date(value)
    except ValueError:  # well formed but impossible, like 2026-02-31
        return None


def _day_start(value: str, *, after: bool = False) -> datetime | None:
    """The first moment of a day in the current time zone (of the next day, with `after`: None after
    the calendar's last day), as created_at__date compares; the day was checked when parsed."""
    day = _parse_day(value)
    if day is None or (after and day == date.max):
        return None
    start = datetime.combine(day + timedelta(days=1) if after else day, datetime.min.time())
    return timezone.make_aware(start)


def _cursor_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _encode_cursor(batch: Batch, sort: tuple[tuple[str, bool], ...]) -> str:
    payload = json.dumps([_cursor_value(getattr(batch, column)) for column, _ in sort])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: tuple[tuple[str, bool], ...]) -> list[Any] | None:
    """The sort values of the last row seen, or None for a cursor that is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(sort):
            return None
        parsed = []
        for (column, _), value in zip(sort, values, strict=True):
            if column == "created_at" and value is not None:
                value = datetime.fromisoformat(value)
                # Ours are aware; the database takes them in UTC, which a date at the edge of the
                # calendar (9999-12-31T23:59-23:00) overflows: OverflowError, a 500.
                if value.tzinfo is None:
                    return None
                value = value.astimezone(UTC)
            elif column == "id":
                if type(value) is not int or value not in _PK_RANGE:
                    return None
            elif column == "done_ratio":
                value = float(value)
                if not math.isfinite(value):
                    return None
            elif (column == "status" and not isinstance(value, str)) or (
                column == "cost_micros"
                and value is not None
                and (type(value) is not int or value not in _COST_RANGE)
            ):
                return None
            parsed.append(value)
        return parsed
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        return None


def _after(sort: tuple[tuple[str, bool], ...], values: list[Any]) -> Q:
    """Rows strictly after `values` in the sort order (lexicographic over the columns).

    NULL created_at sorts last when descending and first when ascending, as both SQLite and
    PostgreSQL agree for these explicit nulls_last/nulls_first orderings."""
    condition = Q(pk__in=[])
    equal = Q()
    for (column, descending), value in zip(sort, values, strict=True):
        if value is None:
            # Descending puts NULLs last, so nothing comes after one; ascending puts them first.
            beyond = Q(pk__in=[]) if descending else Q(**{f"{column}__isnull": False})
            condition |= equal & beyond
            equal &= Q(**{f"{column}__isnull": True})
        else:
            lookup = "lt" if descending else "gt"
            beyond = Q(**{f"{column}__{lookup}": value})
            if descending:
                beyond |= Q(**{f"{column}__isnull": True})
            condition |= equal & beyond
            equal &= Q(**{column: value})
    return condition


def _order_by(sort: tuple[tuple[str, bool], ...]) -> list[Any]:
    return [
        F(column).desc(nulls_last=True) if descending else F(column).asc(nulls_first=True)
        for column, descending in sort
    ]


def batch_page(filters: BatchFilters, cursor: str | None, page_size: int = PAGE_SIZE) -> BatchPage:
    """Keyset pagination: constant cost however deep the page."""
    sort = SORTS[filters.sort]
    queryset = filters.apply(_row_queryset()).order_by(*_order_by(sort))
    position = _decode_cursor(cursor, sort) if cursor else None
    if position is not None:
        queryset = queryset.filter(_after(sort, position))
    rows = list(queryset[: page_size + 1])
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    return BatchPage(
        rows=rows,
        next_cursor=_encode_cursor(rows[-1], sort) if has_more and rows else None,
        is_first_page=position is None,
    )


# What a row of the list shows (templates/batches/list.html#row, with the connection's name as
# connection_name): the list and the row poll load only these columns, and skip the JSON of the raw
# object and the errors. A test renders a row with no query beyond its own load.
ROW_FIELDS = (
    "id",
    "batch_id",
    "status",
    "is_terminal",
    "endpoint",
    "model",
    "metadata",
    "created_at",
    "in_progress_at",
    "expires_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelled_at",
    "total_requests",
    "completed_requests",
    "failed_requests",
    "last_progress_at",
    "rate_per_minute",
    "eta_at",
    "last_synced_at",
    "listed",
    "problems",
    # The cost cell (spend.money.batch_cost_text).
    "cost_micros",
    "input_tokens",
    "output_tokens",
)


def _row_queryset() -> QuerySet[Batch]:
    return Batch.objects.only(*ROW_FIELDS).annotate(connection_name=F("connection__name"))


# The row poll is the most frequent request there is: its query is compiled once (dashboard.prepared).
# Compiled by the ORM at every poll instead, a poll as browsers send it took 1.59x the CPU time (2.43 vs
# 1.53 ms; in-process test Client, 1,000 polls x 5 interleaved rounds, 2026-12-01).
_ROW = PreparedQuery(lambda pk: _row_queryset().filter(pk=pk))


def row_batch(pk: int) -> Batch | None:
    """One batch as a row of the list shows it (see ROW_FIELDS), or None."""
    if pk not in _PK_RANGE:
        return None
    return _ROW.first(pk)


PK_RANGE = _PK_RANGE  # what a batch's pk can be: a number outside it is no batch, without a query


def rows_by_pk(pks: Iterable[int], limit: int) -> list[Batch]:
    """The batches behind some rows of the list, loaded as the list loads them; at most `limit`."""
    wanted = [pk for pk in pks if pk in _PK_RANGE][:limit]
    return list(_row_queryset().filter(pk__in=wanted)) if wanted else []


def first_row_pk(filters: BatchFilters) -> int | None:
    """The pk of the first row of the list's first page under these filters."""
    sort = SORTS[filters.sort]
    return filters.apply(Batch.objects.all()).order_by(*_order_by(sort)).values_list("pk", flat=True).first()


def row_version(batch: Batch, *, now: datetime, stalled_after: timedelta, can_operate: bool) -> str:
    """Changes whenever the row as rendered for this user would, but for the relative times, which
    tick in the browser (static/js/app.js). The row poll sends it back, and an unchanged row costs a
    204 instead of a render: with the defaults (a 5 s poll, a 15 s refresh, which moves
    last_synced_at) two polls in three find the row unchanged."""
    state = (
        batch.status,
        batch.completed_requests,
        batch.failed_requests,
        batch.total_requests,
        batch.listed,
        bool(batch.problems),
        batch.last_synced_at.timestamp() if batch.last_synced_at else None,
        batch.is_stalled(now, stalled_after),
        can_operate,
        batch.cost_micros,
    )
    return hashlib.blake2b(repr(state).encode(), digest_size=8).hexdigest()


T = TypeVar("T")


def cached(key: str, make: Callable[[], T], seconds: int) -> T:
    """cache.get_or_set with its type: the value make() returns, or the cached copy of one. Never
    None, which the stubs allow for: while Redis is down the cache misses and make() runs."""
    return cast(T, cache.get_or_set(key, make, seconds))


STATUS_COUNTS_SECONDS = 5


def _per_status(filters: BatchFilters, changes: str | None = None) -> dict[str, tuple[int, int, int]]:
    """Per status, under every filter but the status one: batches, their cost (micro-dollars) and how
    many have usage but no price. One scan serves the status cards and the list's cost total.

    Counting is a scan of every matching row, paid by every page and every poll of every open tab;
    the sync changes them every few seconds at most, so a few seconds' cache is enough. `changes` is
    the page poll's change token (batches.live): part of the key, so that a change is counted at once."""

    def read() -> dict[str, tuple[int, int, int]]:
        queryset = filters.apply(Batch.objects.all(), with_status=False)
        unpriced = Q(cost_micros__isnull=True) & (
            Q(input_tokens__isnull=False) | Q(output_tokens__isnull=False)
        )
        return {
            row["status"]: (row["n"], row["micros"] or 0, row["unpriced"])
            for row in queryset.values("status").annotate(
                n=Count("id"), micros=Sum("cost_micros"), unpriced=Count("id", filter=unpriced)
            )
        }

    key = (
        "batches:per-status:"
        + hashlib.sha256(repr((replace(filters, statuses=(), sort=""), changes)).encode()).hexdigest()
    )
    return cached(key, read, STATUS_COUNTS_SECONDS)


def status_counts(filters: BatchFilters, changes: str | None = None) -> dict[str, int]:
    """Counts per status under every filter but the status one, so the cards can act as filters."""
    counts = dict.fromkeys(KNOWN_STATUSES, 0)
    for status, (n, _, _) in _per_status(filters, changes).items():
        counts[status] = n
    return counts


def cost_total(filters: BatchFilters, changes: str | None = None) -> tuple[int, int]:
    """The cost of every batch under the list's filters (micro-dollars) and how many of them have usage
    but no price, so the total can say it leaves them out."""
    chosen = [
        v
        for status, v in _per_status(filters, changes).items()
        if not filters.statuses or status in filters.statuses
    ]
    return sum(v[1] for v in chosen), sum(v[2] for v in chosen)


FILTER_CHOICES_SECONDS = 60


def filter_choices(connections: list[Connection]) -> dict[str, list[str]]:
    """The values the filter menus offer. Endpoints and models change rarely and cost a scan of the
    whole table, so they are cached for a minute rather than read on every page and poll."""

    def distinct(column: str) -> list[str]:
        return list(
            Batch.objects.exclude(**{column: ""}).values_list(column, flat=True).distinct().order_by(column)
        )

    menus = cached(
        "batches:filter-choices",
        lambda: {"endpoints": distinct("endpoint"), "models": distinct("model")},
        FILTER_CHOICES_SECONDS,
    )
    return {"connections": [connection.name for connection in connections], **menus}


@dataclass(frozen=True)
class ConnectionHealth:
    connection: Connection
    state: str  # "fresh", "stale", "waiting" (rate limited or failing), "never"
    rate_limited: bool


def all_connections() -> list[Connection]:
    return list(Connection.objects.order_by("name"))


def sync_health(connections: list[Connection], now: datetime | None = None) -> list[ConnectionHealth]:
    """Whether each enabled connection's data is current: a page says so next to what it shows."""
    now = now or timezone.now()
    health = []
    for connection in connections:
        if not connection.enabled or not is_configured(connection):
            continue
        rate_limited = "429" in connection.last_error or "rate limit" in connection.last_error.lower()
        if connection.next_attempt_at and connection.next_attempt_at > now:
            state = "waiting"
        elif connection.last_success_at is None:
            state = "never"
        elif now - connection.last_success_at > timedelta(seconds=3 * connection.refresh_interval + 30):
            state = "stale"
        else:
            state = "fresh"
        health.append(ConnectionHealth(connection, state, rate_limited))
    return health
