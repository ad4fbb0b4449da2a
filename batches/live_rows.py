"""Rows rendered once per version and kept in Redis as text, for the page poll (batches/views_live.py)
and for a row's own poll (views.batch_row).

A row is the same for everyone of one role (selectors.row_version covers the role), so it is rendered
once and every poll after reads it with one MGET, no unpickling. The per-request parts (the CSRF token
of the no-JavaScript cancel form and the page to return to) are rendered as stand-ins and filled in
per request, only in rows that have the form (an operator's): a viewer's poll masks no CSRF token.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from django.conf import settings
from django.middleware.csrf import get_token
from django.template.loader import get_template
from django.utils import timezone
from django.utils.html import escape
from redis.exceptions import RedisError

from accounts.polls import PollRequest
from batches import live_selectors, rows, selectors
from batches.models import Batch
from dashboard import shared_redis

ROW_CACHE_SECONDS = 300
ROW_PREFIX = "batch-dashboard:live-row:"
ROW_POLL_PREFIX = "batch-dashboard:row-poll:"
# Stand-ins in a cached row, replaced per request (plain letters, which HTML escaping leaves alone).
CSRF_SLOT = "LIVECSRFSLOTQ7X"
NEXT_SLOT = "LIVENEXTSLOTQ7X"


def changed_rows(request: PollRequest, changed: dict[int, str]) -> list[str]:
    """The changed rows, each rendered once per version for everyone (the shared cache), with this
    request's own form token and return address filled in."""
    if not changed:
        return []
    keys = {pk: f"{ROW_PREFIX}{pk}:{version}" for pk, version in changed.items()}
    # Plain UTF-8 in Redis (dashboard.shared_redis), beside the page's state: no pickling.
    try:
        cached = shared_redis.client().mget(list(keys.values()))
    except (RedisError, OSError):
        cached = [None] * len(keys)
    found = zip(keys, cached, strict=True)
    fragments = {pk: shared_redis.text(value) for pk, value in found if value is not None}
    missing = [pk for pk in keys if pk not in fragments]
    if missing:
        fresh = _render_rows(request, missing)
        # Kept under the version each row was rendered at, which may be newer than the one compared.
        with contextlib.suppress(RedisError, OSError):
            pipe = shared_redis.client().pipeline(transaction=False)
            for pk, (version, text) in fresh.items():
                pipe.set(f"{ROW_PREFIX}{pk}:{version}", text.encode(), ex=ROW_CACHE_SECONDS)
            pipe.execute()
        fragments.update({pk: text for pk, (_, text) in fresh.items()})
    texts = list(fragments.values())
    # Only rows with a cancel form (an operator's) have the slots: a viewer's poll masks no CSRF token.
    if any(CSRF_SLOT in text or NEXT_SLOT in text for text in texts):
        csrf = get_token(request)
        htmx = getattr(request, "htmx", None)  # django-htmx's middleware sets it; PollRequest does not say
        back = escape((htmx.current_url_abs_path if htmx else None) or "/")
        texts = [text.replace(CSRF_SLOT, csrf).replace(NEXT_SLOT, back) for text in texts]
    # A <tr> cannot stand outside a table in HTML: htmx takes out-of-band rows out of a <template>.
    return [f"<template>{text}</template>" for text in texts]


def row_poll_fragment(request: PollRequest, batch: Batch, version: str, now: datetime) -> str:
    """A row as its own poll renders it (views.batch_row, the page poll's baseline), rendered once
    per version (selectors.row_version, which covers the asker's role) for everyone and kept in Redis
    like the page poll's rows, with this request's form token and address filled in."""
    key = f"{ROW_POLL_PREFIX}{batch.pk}:{version}"
    try:
        kept = shared_redis.client().get(key)
    except (RedisError, OSError):
        kept = None
    if kept is not None:
        text = shared_redis.text(kept)
    else:
        stalled_after = timedelta(minutes=settings.STALLED_AFTER_MINUTES)
        row = rows.row(batch, now=now, stalled_after=stalled_after, can_operate=request.poller.can_operate)
        context = {
            "row": row,
            "now": now,
            "stalled_after": stalled_after,
            "row_poll": True,  # the row keeps polling itself
            "csrf_token": CSRF_SLOT,
            "request": {"get_full_path": NEXT_SLOT},
        }
        text = get_template("batches/list.html#row").render(context)
        with contextlib.suppress(RedisError, OSError):
            shared_redis.client().set(key, text.encode(), ex=ROW_CACHE_SECONDS)
    if CSRF_SLOT in text or NEXT_SLOT in text:  # an operator's row: its cancel form
        text = text.replace(CSRF_SLOT, get_token(request)).replace(NEXT_SLOT, escape(request.get_full_path()))
    return text


def _render_rows(request: PollRequest, pks: list[int]) -> dict[int, tuple[str, str]]:
    """pk: (version, the row rendered for any user of this role, with stand-ins for the per-request
    parts)."""
    now = timezone.now()
    stalled_after = timedelta(minutes=settings.STALLED_AFTER_MINUTES)
    template = get_template("batches/list.html#row")
    rendered = {}
    for batch in selectors.rows_by_pk(pks, live_selectors.MAX_POLLED_ROWS):
        row = rows.row(batch, now=now, stalled_after=stalled_after, can_operate=request.poller.can_operate)
        version = row["live_version"] or live_selectors.row_live_version(
            batch, now=now, stalled_after=stalled_after, can_operate=request.poller.can_operate
        )
        context = {
            "row": row,
            "stalled_after": stalled_after,
            "oob": True,
            "csrf_token": CSRF_SLOT,
            "request": {"get_full_path": NEXT_SLOT},
        }
        rendered[batch.pk] = (version, template.render(context))
    return rendered
