"""The page poll: one request per open page and interval, answered with only what changed.

A page (the list, a batch's page) carries one hidden poll element (templates/batches/_live_poll.html).
Every few seconds it sends the change token it last got (batches.live), and static/js/app.js adds the
versions of what the page shows: its running rows (`data-live` + `data-version`) and its other parts
(`data-live-part` + `data-version`: the summary, the detail page's cards). The answer is

- 204 when the token is unchanged (one Redis round trip, no query, no render), or else
- a new poll element (a new token; a slower interval once no running row is left) and, swapped
  out of band, the fragments whose version differs: rows, the summary, the detail page's cards, and
  the title. New batches at the top of the list's first page are put on top of the table.

Rows are the same for everyone who may (or may not) cancel, so a row is rendered once per version and
kept in Redis as text (batches/live_rows.py, also for the row's own poll). A page's state
(its rows' versions, the summary) is kept in Redis per page and role and read in the same round trip as
the change token; after a change one request works it out again while the others answer from the kept
one (_page_state).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import pickle
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import TooManyFieldsSent
from django.http import Http404, HttpResponse, QueryDict
from django.template import Context, Engine, Template, engines
from django.template.backends.django import DjangoTemplates
from django.template.context_processors import csrf
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError

from accounts.polls import PollRequest, poll_login_required
from batches import live, live_rows, live_selectors, rows, selectors, selectors_history
from batches.models import Batch
from batches.selectors import BatchFilters
from dashboard import shared_redis

# A page with running rows polls this often; one without only watches for new batches, slower.
FAST_SECONDS = 5
SLOW_SECONDS = 30
# How long a page's state (batches.live_selectors' versions, the summary) is shared for one change
# token: what only the clock changes (a batch turning stalled) shows within this many seconds more.
PAGE_STATE_SECONDS = 5
# A page's state is kept this long after it was worked out, to answer from while one request works
# out the next (views_live._page_state); that request has this long before another may try.
PAGE_STATE_KEEP_SECONDS = 60
PAGE_STATE_PREFIX = "batch-dashboard:live-page:"
PAGE_STATE_BUSY_SECONDS = 5
# How soon a tab answered from a page state older than the current token polls again.
CATCH_UP_SECONDS = 1.0
# What the poll itself adds to the page's query string; the rest are the list's filters.
POLL_PARAMS = ("c", "t", "w", "r", "first", "rows", "s", "v", "h", "cursor")
# Stand-in for the poll element's URL (poll_element), as live_rows has for a row's per-request parts.
URL_SLOT = "LIVEURLSLOTQ7X"


@dataclass(frozen=True)
class PollQuery:
    """A poll's query string, parsed once: the poll's own parameters (POLL_PARAMS, the last value of
    each, as QueryDict.get gives) and the rest, the page's filters, encoded again. Django's QueryDict
    was a tenth of a page poll: most of the string is the rows' versions, which are read once here."""

    own: dict[str, str]
    filters: str  # the page's filters, urlencoded: what the next poll URL and the page state's key carry

    @classmethod
    def parse(cls, raw: str) -> PollQuery:
        try:
            pairs = parse_qsl(
                raw, keep_blank_values=True, max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
            )
        except ValueError as error:  # more fields than Django itself would parse: a 400, as Django's
            raise TooManyFieldsSent("Too many fields in the poll's query string.") from error
        own = {name: value for name, value in pairs if name in POLL_PARAMS}
        return cls(own=own, filters=urlencode([(n, v) for n, v in pairs if n not in POLL_PARAMS]))

    def filter_query(self) -> QueryDict:
        """The filters as the list's selectors take them (only when a page's state is worked out)."""
        return QueryDict(self.filters)


@dataclass(frozen=True)
class Shown:
    """What the page says it shows, parsed strictly: anything malformed counts as outdated."""

    token: str = ""
    issued: float = 0.0
    watched: tuple[str, ...] = ()
    rows: dict[int, str] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)
    first: int | None = None
    running: bool = True  # whether the page had running rows at its last answer (r=0 says not)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Shown:
        rows_shown: dict[int, str] = {}
        for item in query.get("rows", "").split(",")[: live_selectors.MAX_POLLED_ROWS]:
            pk, _, version = item.partition(".")
            # _number's test, inline: this runs for every row of every poll.
            if version and pk.isdigit() and pk.isascii() and len(pk) <= 18:
                rows_shown[int(pk)] = version[:32]
        first = query.get("first", "")
        issued = query.get("t", "")
        return cls(
            token=query.get("c", "")[:2000],
            issued=float(_number(issued) or 0),
            watched=tuple(live.watched_names(query.get("w", ""))),
            rows=rows_shown,
            parts={name: query.get(name, "")[:32] for name in ("s", "v", "h")},
            first=_number(first),
            running=query.get("r", "1") != "0",
        )

    def is_current(self, token: str | None) -> bool:
        """Nothing the page shows can have changed: the same token, given recently enough that what
        only the clock changes (a batch becoming stalled) is still right."""
        age = time.time() - self.issued
        return token is not None and token == self.token and 0 <= age < settings.LIVE_RECHECK_SECONDS


def _number(text: str) -> int | None:
    """A non-negative integer as a page sends one, or None: ASCII digits only ("²".isdigit() is true
    and int() refuses it) and short (int() refuses more than 4,300 digits)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def poll_element(url: str, query: str, token: str | None, seconds: int) -> str:
    """The poll element for `url` with the query string `query` (urlencoded), which it completes with
    the change token and the time."""
    stamp = urlencode({"c": token or "", "t": str(int(time.time()))})
    template = _engine().get_template("batches/_live_poll.html")
    markup = _poll_markup(template, seconds, settings.LIVE_EVENTS_URL)
    # The template's output with the URL escaped as its autoescaping would: safe to put in a page.
    return mark_safe(
        markup.replace(URL_SLOT, escape(f"{url}?{query}&{stamp}" if query else f"{url}?{stamp}"))
    )


def _engine() -> Engine:
    return cast(DjangoTemplates, engines["django"]).engine  # the project's one template backend


@functools.lru_cache(maxsize=8)
def _poll_markup(template: Template, seconds: int, events_url: str) -> str:
    """The poll element with a stand-in for its URL, rendered once per template, interval and events
    URL (everything else it shows): the render was a tenth of a poll. Keyed by the loaded template, so
    an edited one is rendered again when Django's template loader loads it again."""
    context = {"poll_url": URL_SLOT, "poll_seconds": seconds, "events_url": events_url}
    return template.render(Context(context))


def _watching(watched: str) -> str:
    return urlencode({"w": watched})


@dataclass(frozen=True)
class PageState:
    """What a list page with these rows and filters should show, as of one change token: shared by
    every tab polling the same page (a team watching one list) through the cache, so that one of them
    pays the queries and the summary's render per change, and the others one cache read."""

    token: str | None  # the change token it was worked out for
    computed_at: float  # time.time() when it was worked out
    rows: dict[int, tuple[str, bool]]  # pk: (version, still active)
    summary_version: str
    summary: str  # the summary card and the title, to send when a page's version differs
    newest: int | None  # the first row of the first page, when the page asked


def _state_key(request: PollRequest, shown: Shown, filters: str) -> str:
    """Where the state of this page (filters, rows shown, the asker's role) is kept in Redis: known
    before the change token, so that it is read in the same round trip (live.watch_and_read)."""
    page = (
        filters,
        sorted(shown.rows),
        request.poller.can_operate,
        request.poller.can_admin,
        shown.first is not None,
    )
    return PAGE_STATE_PREFIX + hashlib.blake2b(repr(page).encode(), digest_size=16).hexdigest()


def _page_state(
    request: PollRequest, shown: Shown, query: PollQuery, token: str | None, key: str, kept: bytes | None
) -> PageState:
    """The page's state for `token`, or, while another request is working that out, the last one
    kept (`kept`, read with the token; it carries its own older token, which the answer then
    carries: the tab asks again soon and gets the new state). Without this, every poll arriving
    between a change and the first request to finish the new state would work it out too: a change
    would cost every tab polling at that moment the queries and the render, the tail of the answer
    times under load. Kept in Redis (dashboard.shared_redis), shared by every web process."""
    if token is None:  # Redis is unreachable: nothing is shared, nothing kept
        return _work_out_state(request, shown, query.filter_query(), None)
    state = _unpickled(kept)
    if state is not None:
        if state.token == token and 0 <= time.time() - state.computed_at < PAGE_STATE_SECONDS:
            return state
        # One request works out the new state; the others meanwhile answer from the kept one.
        if not _claim(key):
            return state
    state = _work_out_state(request, shown, query.filter_query(), token)
    with contextlib.suppress(RedisError, OSError):
        pipe = shared_redis.client().pipeline(transaction=False)
        pipe.set(key, pickle.dumps(state, pickle.HIGHEST_PROTOCOL), ex=PAGE_STATE_KEEP_SECONDS)
        pipe.delete(f"{key}:busy")
        pipe.execute()
    return state


def _claim(key: str) -> bool:
    """Whether this request may work out the page's new state: no other one is at it."""
    try:
        return bool(shared_redis.client().set(f"{key}:busy", 1, nx=True, ex=PAGE_STATE_BUSY_SECONDS))
    except (RedisError, OSError):
        return True


def _unpickled(kept: bytes | None) -> PageState | None:
    # Written by this module alone (as Django's cache pickles what it keeps in the same Redis); a
    # value from an older release that no longer loads is simply worked out again.
    if not kept:
        return None
    try:
        state = pickle.loads(kept)
    except Exception:
        return None
    return state if isinstance(state, PageState) else None


def _work_out_state(
    request: PollRequest, shown: Shown, page_query: QueryDict, token: str | None
) -> PageState:
    now = timezone.now()
    computed_at = time.time()
    filters = BatchFilters.from_query(page_query)
    counts = selectors.status_counts(filters, token)
    health = selectors.sync_health(selectors.all_connections(), now)
    summary_version = live_selectors.summary_version(counts, health, request.poller.can_admin)
    context = {
        "counts": counts,
        "health": health,
        "filters": filters,
        "query_without_status": _without(page_query, "status"),
        "can_admin": request.poller.can_admin,
        "summary_version": summary_version,
        "oob": True,
    }
    title = get_template("batches/list.html#title").render({"counts": counts}).strip()
    return PageState(
        token=token,
        computed_at=computed_at,
        rows=live_selectors.row_versions(
            shown.rows,
            now=now,
            stalled_after=timedelta(minutes=settings.STALLED_AFTER_MINUTES),
            can_operate=request.poller.can_operate,
        ),
        summary_version=summary_version,
        # The title first: htmx takes the first <title> of an answer, and the summary holds one too.
        summary=f"<title>{escape(title)} · Batch dashboard</title>"
        + get_template("batches/list.html#summary").render(context),
        newest=live_selectors.newest_pk(filters) if shown.first is not None else None,
    )


@require_GET
@login_not_required  # the poll's own check instead, as for the row poll (accounts.polls)
@poll_login_required
def list_live(request: PollRequest) -> HttpResponse:
    query = PollQuery.parse(request.META.get("QUERY_STRING", ""))
    shown = Shown.from_query(query.own)
    key = _state_key(request, shown, query.filters)
    # One round trip: watched, the change token, the refreshes due, and the page's kept state.
    reading = live.watch_and_read(shown.watched, also_get=(key,))
    token = reading.token
    if shown.is_current(token):
        return _paced(HttpResponse(status=204), reading, shown.watched, shown.running)
    state = _page_state(request, shown, query, token, key, reading.also[0] if reading.also else None)
    # Usually the current token; an older one while another request works out the current state.
    token = state.token
    response = HttpResponse()
    new_rows, running = "", False
    first = shown.first
    if first is not None and state.newest is not None and state.newest > first:
        # New batches (rows are numbered as they are first seen) go on top of the table; the rows the
        # page shows stay. A first row that only left the filter (no longer running) changes nothing.
        new_rows, newest, running = _new_rows(request, BatchFilters.from_query(query.filter_query()), first)
        first = newest if newest is not None and newest > first else first
    running = running or any(active for _, active in state.rows.values())
    own = {"w": ",".join(shown.watched), **({"first": str(first)} if first is not None else {})}
    live_query = "&".join(part for part in (query.filters, urlencode({**own, "r": int(running)})) if part)
    # This very URL (the list's poll), without a reverse() per poll.
    response.write(poll_element(request.path, live_query, token, _seconds(running)))
    changed = {pk: version for pk, (version, _) in state.rows.items() if version != shown.rows.get(pk)}
    response.write("".join(live_rows.changed_rows(request, changed)))
    response.write(new_rows)
    if state.summary_version != shown.parts["s"]:
        response.write(state.summary)
    return _paced(response, reading, shown.watched, running, catch_up=token != reading.token)


# From a refresh's due moment to its rows committed (beat's dispatcher starts it within a second, then
# the run itself): a page polls this long after it.
REFRESH_SETTLE_SECONDS = 1.5
# Pages watching one connection would otherwise all poll in the same instant after each refresh: each
# waits a random part of this many seconds more, which spreads the load for little freshness.
POLL_SPREAD_SECONDS = 2.0


def _paced(
    response: HttpResponse,
    reading: live.Reading,
    watched: Sequence[str],
    running: bool,
    *,
    catch_up: bool = False,
) -> HttpResponse:
    """Tell the page when to poll next (static/js/app.js): just after the next refresh of what it
    watches, so that a change waits for one interval, not for a refresh and then a poll; never later
    than the page's own interval; soon when the answer was older than the current token
    (`catch_up`). X-Live-Poll-In is in milliseconds."""
    if catch_up:
        response["X-Live-Poll-In"] = str(round(CATCH_UP_SECONDS * 1000 * random.uniform(1, 2)))
        return response
    seconds = float(_seconds(running))
    due = reading.next_refresh_of(watched)
    if running and due is not None:
        after_refresh = due + REFRESH_SETTLE_SECONDS + random.uniform(0, POLL_SPREAD_SECONDS) - time.time()
        if after_refresh > 0.5:
            seconds = min(seconds, after_refresh)
        elif after_refresh > -REFRESH_SETTLE_SECONDS:
            seconds = min(seconds, 0.5)
    response["X-Live-Poll-In"] = str(round(seconds * 1000))
    return response


def _new_rows(request: PollRequest, filters: BatchFilters, first: int) -> tuple[str, int | None, bool]:
    """The rows of the first page above the one the page shows first (new batches), to put on top
    of its table: (their HTML, the new first row, whether any of them runs)."""
    page = selectors.batch_page(filters, None)
    now = timezone.now()
    stalled_after = timedelta(minutes=settings.STALLED_AFTER_MINUTES)
    template = get_template("batches/list.html#row")
    context = {"stalled_after": stalled_after, "request": request, **csrf(request)}
    made, running = [], False
    for batch in page.rows:
        if batch.pk == first or batch.pk < first:
            break
        row = rows.row(batch, now=now, stalled_after=stalled_after, can_operate=request.poller.can_operate)
        running = running or bool(row["live_version"])
        made.append(template.render({**context, "row": row}))
    newest = page.rows[0].pk if page.rows else None
    # A <tbody> out of band: htmx puts its rows at the top of the table's own.
    html = f'<template><tbody hx-swap-oob="afterbegin:#batch-table tbody">{"".join(made)}</tbody></template>'
    return (html if made else ""), newest, running


def _without(query: QueryDict, *names: str) -> str:
    query = query.copy()
    for name in ("cursor", *names):
        query.pop(name, None)
    return query.urlencode()


def list_poll_context(
    page_query: QueryDict, page: selectors.BatchPage, shown_rows: list[rows.Row], watched: str = ""
) -> dict[str, str]:
    """The list page's poll element, as the page (batches.views) and a new table render it; `watched`
    is the connections shown (pks, comma-separated), or every connection when empty."""
    query = page_query.copy()
    for name in POLL_PARAMS:
        query.pop(name, None)
    query["w"] = watched or live.EVERY_CONNECTION
    if page.is_first_page and page.rows and page_query.get("sort", "created") == "created":
        query["first"] = str(page.rows[0].pk)
    running = any(row["live_version"] for row in shown_rows)
    query["r"] = "1" if running else "0"
    url = reverse("batches:live")
    return {"live_poll": poll_element(url, query.urlencode(), live.read_token(), _seconds(running))}


def _seconds(running: bool) -> int:
    return FAST_SECONDS if running else SLOW_SECONDS


@require_GET
@login_not_required
@poll_login_required
def detail_live(request: PollRequest, pk: int) -> HttpResponse:
    shown = Shown.from_query(PollQuery.parse(request.META.get("QUERY_STRING", "")).own)
    reading = live.watch_and_read(shown.watched)
    token = reading.token
    if shown.is_current(token):
        return _paced(HttpResponse(status=204), reading, shown.watched, True)
    batch = Batch.objects.select_related("connection").filter(pk=pk).first() if pk > 0 else None
    if batch is None:
        raise Http404("No such batch.")
    parts = _detail_parts(request, batch, shown)
    response = HttpResponse()
    if batch.is_active:
        # Once the batch has finished, the poll element is swapped for nothing: the page stops polling.
        url = rows.batch_url("batches:detail_live", batch.pk)
        response.write(poll_element(url, _watching(str(batch.connection_id)), token, FAST_SECONDS))
    response.write("".join(parts))
    return _paced(response, reading, shown.watched, batch.is_active)


def _detail_parts(request: PollRequest, batch: Batch, shown: Shown) -> list[str]:
    now = timezone.now()
    stalled_after = timedelta(minutes=settings.STALLED_AFTER_MINUTES)
    live_version, history_version = live_selectors.detail_versions(
        batch, now=now, stalled_after=stalled_after, can_operate=request.poller.can_operate
    )
    context = {
        "batch": batch,
        "now": now,
        "stalled_after": stalled_after,
        "can_operate": request.poller.can_operate,
        "live_version": live_version,
        "history_version": history_version,
        "oob": True,
        "request": request,
        **csrf(request),  # masked only if a card holds a form
    }
    parts = []
    if live_version != shown.parts["v"]:
        parts.append(get_template("batches/detail.html#live").render(context))
    if history_version != shown.parts["h"]:
        context["history"] = selectors_history.batch_history(batch, now)
        parts.append(get_template("batches/detail.html#history").render(context))
    return parts


def detail_poll_context(batch: Batch) -> dict[str, str]:
    """The detail page's poll element, as the page renders it (it stops once the batch has finished)."""
    if not batch.is_active:
        return {"live_poll": ""}
    url = rows.batch_url("batches:detail_live", batch.pk)
    return {
        "live_poll": poll_element(url, _watching(str(batch.connection_id)), live.read_token(), FAST_SECONDS)
    }
