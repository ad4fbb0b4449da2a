"""Reads for the page poll (batches/views_live.py): the versions of what a page shows.

A version is a short hash of what a fragment shows, but for what ticks in the browser (relative times,
static/js/app.js) and for when the sync last looked (a refresh every 5 s would otherwise change every
running row every 5 s while nothing on it moved). The page sends the versions of what it shows; the
poll sends back only the fragments whose version differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from batches import selectors
from batches.models import Batch, is_stalled
from batches.selectors import BatchFilters, ConnectionHealth

# More than a page shows (50): a poll naming more is cut, never a query of unbounded size.
MAX_POLLED_ROWS = 200
# What a row's version depends on, read as plain values (no model built: a poll compares 50 rows).
_VERSION_FIELDS = (
    "pk",
    "status",
    "is_terminal",
    "completed_requests",
    "failed_requests",
    "total_requests",
    "listed",
    "problems",
    "eta_at",
    "last_progress_at",
    "in_progress_at",
)


def _digest(state: object) -> str:
    return hashlib.blake2b(repr(state).encode(), digest_size=8).hexdigest()


def _row_digest(values: dict[str, Any], now: datetime, stalled_after: timedelta, can_operate: bool) -> str:
    eta_at = values["eta_at"]
    return _digest(
        (
            values["status"],
            values["completed_requests"],
            values["failed_requests"],
            values["total_requests"],
            values["listed"],
            bool(values["problems"]),
            eta_at.timestamp() if eta_at else None,
            is_stalled(
                values["status"], values["last_progress_at"], values["in_progress_at"], now, stalled_after
            ),
            can_operate,
        )
    )


def row_live_version(batch: Batch, *, now: datetime, stalled_after: timedelta, can_operate: bool) -> str:
    """Changes whenever the row as rendered for this user would, but for its relative times and its
    last sync time."""
    values = {name: getattr(batch, name) for name in _VERSION_FIELDS}
    return _row_digest(values, now, stalled_after, can_operate)


def row_versions(
    pks: Collection[int], *, now: datetime, stalled_after: timedelta, can_operate: bool
) -> dict[int, tuple[str, bool]]:
    """Each row's version, and whether its batch is still active (its row stays in the poll), for the
    batches that exist among `pks` (at most MAX_POLLED_ROWS): one query, no model built."""
    wanted = [pk for pk in pks if pk in selectors.PK_RANGE][:MAX_POLLED_ROWS]
    if not wanted:
        return {}
    return {
        values["pk"]: (_row_digest(values, now, stalled_after, can_operate), not values["is_terminal"])
        for values in Batch.objects.filter(pk__in=wanted).values(*_VERSION_FIELDS)
    }


def summary_version(counts: dict[str, int], health: Sequence[ConnectionHealth], can_admin: bool) -> str:
    """The summary cards and the title: counts per status and each connection's sync state."""
    return _digest(
        (
            sorted(counts.items()),
            [(item.connection.pk, item.state, item.rate_limited) for item in health],
            not health and can_admin,
        )
    )


def newest_pk(filters: BatchFilters) -> int | None:
    """The first row of the list's first page under these filters: a page showing another first row
    is missing a new batch."""
    return selectors.first_row_pk(filters)


def detail_versions(
    batch: Batch, *, now: datetime, stalled_after: timedelta, can_operate: bool
) -> tuple[str, str]:
    """The detail page's live card and its history card."""
    live = _digest(
        (
            row_live_version(batch, now=now, stalled_after=stalled_after, can_operate=can_operate),
            batch.rate_per_minute,
            batch.expires_at.timestamp() if batch.expires_at else None,
        )
    )
    history = _digest((batch.status, batch.last_progress_at.timestamp() if batch.last_progress_at else None))
    return live, history
