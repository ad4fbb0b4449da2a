"""Reads for the pages: every query the views run lives here."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_date

from batches.models import KNOWN_STATUSES, TERMINAL_STATUSES, Batch, Connection

PAGE_SIZE = 50
SORTS = {
    "created": ("-created_at", "-id"),
    "-created": ("created_at", "id"),
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
    def from_query(cls, query: Mapping[str, Any]) -> BatchFilters:
        getlist = (
            query.getlist
            if hasattr(query, "getlist")
            else (lambda k: [query.get(k)] if k in query else [])
        )
        invalid: list[str] = []
        statuses = tuple(sorted({s for s in getlist("status") if s}))
        metadata: list[tuple[str, str]] = []
        for item in getlist("meta"):
            if item and "=" in item:
                key, _, value = item.partition("=")
                metadata.append((key.strip()[:64], value.strip()[:512]))
            elif item:
                invalid.append(f"metadata filter {item[:40]!r} is not key=value")
        created_from = (query.get("created_from") or "").strip()
        created_to = (query.get("created_to") or "").strip()
        for label, value in (("from", created_from), ("to", created_to)):
            if value and parse_date(value) is None:
                invalid.append(f"created {label} date {value[:20]!r} is not YYYY-MM-DD")
        sort = query.get("sort") or "created"
        if sort not in SORTS:
            invalid.append(f"unknown sort {sort[:20]!r}")
            sort = "created"
        return cls(
            statuses=statuses,
            connection=(query.get("connection") or "").strip()[:100],
            endpoint=(query.get("endpoint") or "").strip()[:200],
            model=(query.get("model") or "").strip()[:200],
            created_from=created_from if created_from and parse_date(created_from) else "",
            created_to=created_to if created_to and parse_date(created_to) else "",
            metadata=tuple(metadata),
            q=(query.get("q") or "").strip()[:200],
            sort=sort,
            invalid=tuple(invalid),
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
        if self.created_from:
            queryset = queryset.filter(created_at__date__gte=parse_date(self.created_from))
        if self.created_to:
            queryset = queryset.filter(created_at__date__lte=parse_date(self.created_to))
        for index, (key, value) in enumerate(self.metadata):
            # KeyTextTransform takes the key literally (a key like "a__b" is not a lookup path); the
            # cast makes the comparison a plain text one rather than a JSON one.
            alias = f"metadata_filter_{index}"
            queryset = queryset.alias(
                **{alias: Cast(KeyTextTransform(key, "metadata"), TextField())}
            ).filter(**{alias: value})
        if self.q:
            queryset = queryset.filter(
                Q(batch_id__icontains=self.q) | Q(metadata__icontains=self.q)
            )
        return queryset


@dataclass(frozen=True)
class BatchPage:
    rows: list[Batch]
    next_cursor: str | None
    is_first_page: bool


def _encode_cursor(batch: Batch) -> str:
    payload = json.dumps([batch.created_at.isoformat() if batch.created_at else None, batch.pk])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime | None, int] | None:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return (datetime.fromisoformat(created) if created else None, int(pk))
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        return None


def batch_page(filters: BatchFilters, cursor: str | None, page_size: int = PAGE_SIZE) -> BatchPage:
    """Keyset pagination on (created_at, id): constant cost however deep the page."""
    queryset = filters.apply(Batch.objects.select_related("connection"))
    newest_first = filters.sort == "created"
    queryset = queryset.order_by(*SORTS[filters.sort])
    position = _decode_cursor(cursor) if cursor else None
    if position is not None:
        created, pk = position
        if newest_first:
            queryset = (
                queryset.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=pk))
                if created
                else queryset.filter(created_at__isnull=True, id__lt=pk)
            )
        else:
            queryset = (
                queryset.filter(Q(created_at__gt=created) | Q(created_at=created, id__gt=pk))
                if created
                else queryset.filter(id__gt=pk)
            )
    rows = list(queryset[: page_size + 1])
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    return BatchPage(
        rows=rows,
        next_cursor=_encode_cursor(rows[-1]) if has_more and rows else None,
        is_first_page=position is None,
    )


def status_counts(filters: BatchFilters) -> dict[str, int]:
    """Counts per status under every filter but the status one, so the cards can act as filters."""
    counts = dict.fromkeys(KNOWN_STATUSES, 0)
    rows = (
        filters.apply(Batch.objects.all(), with_status=False)
        .values("status")
        .annotate(n=Count("id"))
    )
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts


def filter_choices() -> dict[str, list[str]]:
    return {
        "connections": list(Connection.objects.values_list("name", flat=True)),
        "endpoints": list(
            Batch.objects.exclude(endpoint="")
            .values_list("endpoint", flat=True)
            .distinct()
            .order_by("endpoint")
        ),
        "models": list(
            Batch.objects.exclude(model="")
            .values_list("model", flat=True)
            .distinct()
            .order_by("model")
        ),
    }


def sync_health() -> list[Connection]:
    return list(Connection.objects.filter(enabled=True))


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def now() -> datetime:
    return timezone.now()
