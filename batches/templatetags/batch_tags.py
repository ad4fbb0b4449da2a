from __future__ import annotations

import json
from datetime import datetime

from django import template
from django.utils import timezone

from batches import eta as eta_module
from batches import rows, statuses

register = template.Library()
# The texts rows.py also writes: one definition for the row's Python and the pages' templates.
register.filter("duration", rows.duration)
register.filter("status_class", statuses.status_class)
register.filter("status_label", statuses.status_label)


@register.filter
def active_total(counts: dict[str, int]) -> int:
    """Batches still running, from the counts per status (the page's title)."""
    return sum(counts.get(status, 0) for status in statuses.ACTIVE_STATUSES)


@register.filter
def since(value: datetime | None) -> str:
    if value is None:
        return ""
    return rows.duration(timezone.now() - value)


@register.filter
def ago(value: datetime | None) -> str:
    """Like "12m 5s ago"; static/js/app.js keeps it ticking (data-relative="ago") between renders."""
    return rows.ago_text(value, timezone.now()) if value is not None else ""


@register.filter
def until(value: datetime | None) -> str:
    """Like "in 12m 5s", or "any moment now" once passed; app.js ticks it (data-relative="until")."""
    return rows.until_text(value, timezone.now()) if value is not None else ""


@register.simple_tag(takes_context=True)
def is_stalled(context, batch) -> bool:
    now = context.get("now") or timezone.now()
    after = context.get("stalled_after")
    return bool(after) and batch.is_stalled(now, after)


@register.simple_tag
def cancel_button(batch, origin: str) -> rows.CancelButton:
    return rows.cancel_button(batch, origin)


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


# Rates for people ("7.7k/min"), the one rounding every page uses.
register.filter("rate", eta_module.rate_text)


@register.simple_tag(takes_context=True)
def batch_eta(context, batch) -> rows.Eta | None:
    """The batch's one ETA (rows.eta), as the list's row shows it."""
    return rows.eta(batch, context.get("now") or timezone.now())
