"""What a row of the batch list shows, worked out in Python once per row.

The list renders fifty rows and every poll renders one; in Django's template language each filter and
each lookup costs microseconds, so the row's strings (formatted times, labels, chips, the poll URL)
are made here and the template (templates/batches/list.html#row) only places them. A row is a plain
dict because the template language looks keys up in a dict before trying attributes.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.urls import get_script_prefix, reverse
from django.utils import timezone

from batches import live_selectors, selectors
from batches.eta import rate_text, stored_range
from batches.models import Batch, Progress
from batches.statuses import status_class, status_label
from spend.money import batch_cost_text


def duration(value: timedelta | None) -> str:
    """A compact human duration: 45s, 12m 5s, 3h 4m, 2d 5h."""
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    if seconds < 0:
        return ""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def ago_text(value: datetime, now: datetime) -> str:
    # A clock a little behind the API's would give a negative age: say 0s rather than nothing.
    return f"{duration(now - value) or '0s'} ago"


def until_text(value: datetime, now: datetime) -> str:
    left = value - now
    return f"in {duration(left)}" if left >= timedelta(seconds=1) else "any moment now"


CHIP_KEY_CHARS = 20
CHIP_VALUE_CHARS = 24
# Ids up to this long are shown whole; longer ones keep their start and end around an ellipsis.
SHORT_ID_CHARS = 18


def short_id(value: str, head: int = 10, tail: int = 5) -> str:
    """ "batch_6745a1b2c3d4e5f6a7b8c9d0" as "batch_6745…8c9d0": the start says what it is, the end tells
    ids apart. The full id stays in the title and the copy button."""
    return value if len(value) <= SHORT_ID_CHARS else f"{value[:head]}…{value[-tail:]}"


class Moment(TypedDict):
    iso: str  # the <time datetime> the browser ticks from
    title: str  # the exact time, shown on hover
    relative: str  # "12m 5s ago", "in 3m 2s"


class CancelButton(TypedDict):
    url: str
    origin: str  # "row" or "detail": which fragment the cancel view answers with
    target: str
    confirm: str


def cancel_button(batch: Batch, origin: str) -> CancelButton:
    """What templates/batches/_cancel_button.html needs, for the list's row or the detail page."""
    return {
        "url": batch_url("batches:cancel", batch.pk),
        "origin": origin,
        "target": f"#batch-{batch.pk}" if origin == "row" else "#batch-live",
        "confirm": (
            f"Cancel {batch.batch_id}? {batch.completed_requests + batch.failed_requests} of "
            f"{batch.total_requests} requests are done; partial results are kept; cancelling can take up "
            "to 10 minutes."
        ),
    }


class Row(TypedDict):
    pk: int
    batch_id: str
    short_id: str
    status: str
    terminal: bool  # announced once when a polled row turns terminal (static/js/app.js)
    status_class: str
    status_label: str
    css_class: str  # the <tr>'s: its status, and whether it stalled
    stalled: bool
    listed: bool
    invalid: bool  # the API sent values out of range or that do not add up (the detail page says which)
    progress: Progress
    connection_name: str
    endpoint: str
    endpoint_short: str  # without the "/v1/" every endpoint starts with
    model: str
    chips: list[tuple[str, str]]
    chips_rest: str  # every chip but the first, for the "+N" tooltip
    created: Moment | None
    elapsed: str
    elapsed_ticks: bool
    eta: Eta | None
    eta_after_expiry: bool
    expires_title: str
    synced: Moment | None
    poll_url: str  # the row's own poll (GET /batches/<pk>/row/), kept as the page poll's baseline
    live_version: str  # what the page poll compares (batches.live_selectors); "" once finished
    detail_url: str
    cancel: CancelButton | None  # None unless the batch can be cancelled and the user may
    cost: str  # "$1.23", "$0.40+" (so far), "no price" or "" (no usage yet)
    cost_title: str


def _moment(value: datetime, relative: str) -> Moment:
    local = timezone.localtime(value)
    return {"iso": local.isoformat(), "title": local.strftime("%Y-%m-%d %H:%M:%S %Z"), "relative": relative}


def _truncate(text: str, limit: int) -> str:
    """As the truncatechars filter does: at most `limit` characters, the last an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chips(metadata: Any) -> list[tuple[str, str]]:
    if not isinstance(metadata, dict):
        return []
    return [
        (f"{key}={value}", f"{_truncate(str(key), CHIP_KEY_CHARS)}={_truncate(str(value), CHIP_VALUE_CHARS)}")
        for key, value in metadata.items()
    ]


def _elapsed(batch: Batch, now: datetime) -> str:
    if batch.created_at is None:
        return ""
    end = batch.completed_at or batch.failed_at or batch.expired_at or batch.cancelled_at
    return duration((end or now) - batch.created_at)


_PK_STAND_IN = 987_654_321


@functools.lru_cache(maxsize=64)
def _url_pattern(name: str, script_prefix: str) -> str:
    # reverse() cost as much as the rest of a row; a batch's URLs differ only in its pk. The script
    # prefix (the URL the site is mounted at) is part of the key because reverse() includes it.
    return reverse(name, args=[_PK_STAND_IN]).replace(str(_PK_STAND_IN), "{pk}", 1)


def batch_url(name: str, pk: int) -> str:
    """reverse(name, args=[pk]) for the batches' URLs with one pk."""
    return _url_pattern(name, get_script_prefix()).format(pk=pk)


class Eta(Moment):
    """The one ETA of a batch, as the list's row, the detail page's header and its history show it."""

    range: str  # "likely between 12:03 and 12:10"
    rate: str  # "7.7k/min"


def _clock(value: datetime, now: datetime) -> str:
    local = timezone.localtime(value)
    same_day = local.date() == timezone.localtime(now).date()
    return local.strftime("%H:%M") if same_day else f"{local:%b} {local.day} {local:%H:%M}"


def eta(batch: Batch, now: datetime) -> Eta | None:
    """From the stored estimate (batches.eta.stored_range): None unless the batch runs and has one."""
    if batch.status != "in_progress":
        return None
    guess = stored_range(
        done=batch.completed_requests + batch.failed_requests,
        total=batch.total_requests,
        in_progress_at=batch.in_progress_at,
        measured_at=batch.last_progress_at,
        rate_per_minute=batch.rate_per_minute,
        eta_at=batch.eta_at,
    )
    if guess.eta_at is None:
        return None
    earliest = _clock(guess.earliest_at or guess.eta_at, now)
    if guess.latest_at is None:
        span = f"likely after {earliest} (no end in sight at the slower rate)"
    else:
        latest = _clock(guess.latest_at, now)
        span = f"likely at {earliest}" if earliest == latest else f"likely between {earliest} and {latest}"
    rate = rate_text(guess.rate_per_minute)
    moment = _moment(guess.eta_at, until_text(guess.eta_at, now))
    return {
        "iso": moment["iso"],
        "relative": moment["relative"],
        "title": f"{moment['title']}, {span}" + (f", at {rate}" if rate else ""),
        "range": span,
        "rate": rate,
    }


def _poll_url(batch: Batch, now: datetime, stalled_after: timedelta, can_operate: bool) -> str:
    # Only active rows poll, so only they need the version (a hash) in their URL.
    version = selectors.row_version(batch, now=now, stalled_after=stalled_after, can_operate=can_operate)
    return f"{batch_url('batches:row', batch.pk)}?v={version}"


def row(batch: Batch, *, now: datetime, stalled_after: timedelta, can_operate: bool) -> Row:
    """`batch` as loaded by selectors (ROW_FIELDS and connection_name)."""
    stalled = batch.is_stalled(now, stalled_after)
    css_status = status_class(batch.status)
    eta_shown = eta(batch, now)
    chips = _chips(batch.metadata)
    cost, cost_title = batch_cost_text(
        batch.cost_micros,
        has_usage=batch.input_tokens is not None or batch.output_tokens is not None,
        active=batch.is_active,
        done=batch.completed_requests + batch.failed_requests,
        total=batch.total_requests,
    )
    return {
        "pk": batch.pk,
        "batch_id": batch.batch_id,
        "short_id": short_id(batch.batch_id),
        "status": batch.status,
        "terminal": batch.is_terminal,
        "status_class": css_status,
        "status_label": status_label(batch.status),
        "css_class": f"status-{css_status} stalled" if stalled else f"status-{css_status}",
        "stalled": stalled,
        "listed": batch.listed,
        "invalid": bool(batch.problems),
        "progress": batch.progress,
        # Added by the selectors' .annotate(); a model type cannot know of per-query attributes.
        "connection_name": batch.connection_name,  # type: ignore[attr-defined]
        "endpoint": batch.endpoint,
        "endpoint_short": batch.endpoint.removeprefix("/v1/"),
        "model": batch.model,
        "chips": chips,
        "chips_rest": ", ".join(title for title, _ in chips[1:]),
        "created": _moment(batch.created_at, ago_text(batch.created_at, now)) if batch.created_at else None,
        "elapsed": _elapsed(batch, now),
        "elapsed_ticks": batch.is_active and batch.created_at is not None,
        "eta": eta_shown,
        "eta_after_expiry": eta_shown is not None and batch.eta_after_expiry,
        "expires_title": (
            timezone.localtime(batch.expires_at).strftime("%Y-%m-%d %H:%M %Z") if batch.expires_at else ""
        ),
        "synced": (
            _moment(batch.last_synced_at, ago_text(batch.last_synced_at, now))
            if batch.last_synced_at
            else None
        ),
        "poll_url": _poll_url(batch, now, stalled_after, can_operate) if batch.is_active else "",
        "live_version": (
            live_selectors.row_live_version(
                batch, now=now, stalled_after=stalled_after, can_operate=can_operate
            )
            if batch.is_active
            else ""
        ),
        "detail_url": batch_url("batches:detail", batch.pk),
        "cancel": cancel_button(batch, "row") if batch.can_cancel and can_operate else None,
        "cost": cost,
        "cost_title": cost_title,
    }
