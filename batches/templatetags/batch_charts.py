"""Tags behind the chart partials, so that the pages' views need no change to show them."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from django import template
from django.core.cache import cache
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from batches import charts, history
from batches.models import Batch

register = template.Library()
OUTCOMES_CACHE_SECONDS = 60


@register.simple_tag(takes_context=True)
def batch_history(context: template.Context, batch: Batch) -> dict[str, Any]:
    """The detail page's charts (SVG whose every text is escaped by batches.charts) and ETA range."""
    now = context.get("now") or timezone.now()
    snapshots = history.snapshots(batch)
    until = now if batch.is_active else None
    throughput = charts.throughput_svg(
        history.progress_points(batch, snapshots),
        until=until,
        label=f"Requests of {batch.batch_id} finished per minute over time",
    )
    progress = charts.progress_svg(
        [(s.at, s.completed, s.failed, s.total) for s in snapshots],
        until=until,
        label=f"Percent of the requests of {batch.batch_id} done and failed over time",
    )
    return {
        "count": len(snapshots),
        "eta": history.eta_range(batch, snapshots, now),
        # batches.charts escapes every text it writes into the SVG.
        "throughput": mark_safe(throughput),
        "progress": mark_safe(progress),
    }


@register.simple_tag(takes_context=True)
def outcomes_chart(context: template.Context) -> SafeString:
    """Batches finished per day and outcome over the last 7 days, under the list's filters (but its
    status filter, which would hide whole outcomes, and its sort, which changes nothing here).

    A week-long view needs no second-by-second freshness: the chart is cached for a minute, so that
    reloading the list does not run its aggregate query every time."""
    filters = context.get("filters")
    if filters is not None:
        filters = dataclasses.replace(filters, statuses=(), sort="created", invalid=())
    now = context.get("now") or timezone.now()
    key = (
        "batches:outcomes-chart:"
        + hashlib.sha256(repr((filters, timezone.localdate(now))).encode()).hexdigest()
    )

    def render() -> str:
        queryset = filters.apply(Batch.objects.all()) if filters is not None else None
        days, counts = history.outcomes_by_day(queryset, days=7, now=now)
        return charts.outcomes_svg(days, counts)

    return mark_safe(cache.get_or_set(key, render, OUTCOMES_CACHE_SECONDS))
