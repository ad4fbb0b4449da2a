from __future__ import annotations

import json
from datetime import datetime, timedelta

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
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


@register.filter
def since(value: datetime | None) -> str:
    if value is None:
        return ""
    return duration(timezone.now() - value)


@register.filter
def between(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return duration(end - start)


@register.simple_tag
def elapsed(batch) -> str:
    if batch.created_at is None:
        return ""
    end = None
    for name in ("completed_at", "failed_at", "expired_at", "cancelled_at"):
        end = end or getattr(batch, name)
    return duration((end or timezone.now()) - batch.created_at)


@register.filter
def status_class(status: str) -> str:
    return {
        "completed": "ok",
        "failed": "bad",
        "expired": "bad",
        "cancelled": "muted",
        "cancelling": "warn",
        "in_progress": "run",
        "finalizing": "run",
        "validating": "wait",
    }.get(status, "unknown")


@register.filter
def status_label(status: str) -> str:
    return status.replace("_", " ")


@register.simple_tag(takes_context=True)
def is_stalled(context, batch) -> bool:
    now = context.get("now") or timezone.now()
    after = context.get("stalled_after")
    return bool(after) and batch.is_stalled(now, after)


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
