"""Reads for the page poll (batches/views_live.py): the rows a page shows, and the versions it compares.

A version is a short hash of what a fragment shows, but for what ticks in the browser (relative times,
static/js/app.js) and for when the sync last looked (a refresh every 5 s would otherwise change every
running row every 5 s while nothing on it moved). The page sends the versions of what it shows; the
poll sends back only the fragments whose version differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from batches import selectors
from batches.models import Batch
from batches.selectors import BatchFilters, ConnectionHealth

# More than a page shows (50): a poll naming more is cut, never a query of unbounded size.
MAX_POLLED_ROWS = 200


def _digest(state: object) -> str:
    return hashlib.blake2b(repr(state).encode(), digest_size=8).hexdigest()


def rows_by_pk(pks: Collection[int]) -> list[Batch]:
    """The batches behind these rows, as the list loads them."""
    return selectors.rows_by_pk(pks, MAX_POLLED_ROWS)


def row_live_version(batch: Batch, *, now: datetime, stalled_after: timedelta, can_operate: bool) -> str:
    """Changes whenever the row as rendered for this user would, but for its relative times and its
    last sync time."""
    return _digest(
        (
            batch.status,
            batch.completed_requests,
            batch.failed_requests,
            batch.total_requests,
            batch.listed,
            bool(batch.problems),
            batch.eta_at.timestamp() if batch.eta_at else None,
            batch.is_stalled(now, stalled_after),
            can_operate,
        )
    )


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
    page = selectors.batch_page(filters, None, page_size=1)
    return page.rows[0].pk if page.rows else None


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
