"""The spend page's chart: cost per day (or hour) stacked by group, as server-rendered SVG drawn with
the batches' chart helpers (escaped text, no script, no style attribute)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from batches.charts import LEFT, RIGHT, WIDTH, _empty, _Frame, _svg, _text, _y_axis, nice_scale

# Distinguishable in light and dark; the last one is "other".
PALETTE = ("#0969da", "#1a7f37", "#bf8700", "#8250df", "#cf222e", "#1b7c83", "#6e7781")
MAX_SERIES = len(PALETTE) - 1
OTHER = "other"


def series_names(ordered_groups: Sequence[str]) -> list[str]:
    """The groups drawn on their own (the biggest first), then "other" for the rest."""
    names = list(ordered_groups[:MAX_SERIES])
    if len(ordered_groups) > MAX_SERIES:
        names.append(OTHER)
    return names


def colours(ordered_groups: Sequence[str]) -> dict[str, str]:
    """Each drawn group's colour (the table beside the chart is its legend); the rest share "other"'s."""
    names = series_names(ordered_groups)
    found = dict(zip(names, PALETTE, strict=False))
    if OTHER in found:
        found[OTHER] = PALETTE[-1]
    return {group: found.get(group, PALETTE[-1]) for group in ordered_groups}


def spend_svg(
    buckets: Sequence[datetime],
    series: dict[tuple[datetime, str], int],
    ordered_groups: Sequence[str],
    *,
    hourly: bool,
    label: str,
) -> str:
    if not buckets or not series:
        return _empty(label, "No priced batches in this period.")
    names = series_names(ordered_groups)
    drawn = set(names)
    stacks: dict[datetime, dict[str, float]] = {bucket: {} for bucket in buckets}
    for (bucket, group), micros in series.items():
        key = group if group in drawn else OTHER
        column = stacks.get(bucket)
        if column is not None:
            column[key] = column.get(key, 0.0) + micros / 1e6
    top = max((sum(column.values()) for column in stacks.values()), default=0.0)
    y_max, y_step = nice_scale(top)
    frame = _Frame(0, len(buckets), y_max, y_step)
    slot = (WIDTH - LEFT - RIGHT) / len(buckets)
    body = _y_axis(frame)  # dollars: the chart's title says so
    every = max(1, len(buckets) // 8)
    colour_of = {**colours(ordered_groups), OTHER: PALETTE[-1]}
    for index, bucket in enumerate(buckets):
        x = frame.x(index) + slot * 0.12
        base = 0.0
        for name in names:
            colour = colour_of[name]
            value = stacks[bucket].get(name, 0.0)
            if not value:
                continue
            y_top, y_bottom = frame.y(base + value), frame.y(base)
            when = f"{bucket:%H:00}" if hourly else f"{bucket:%a %b %d}"
            height = y_bottom - y_top
            body.append(
                f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{slot * 0.76:.1f}" height="{height:.1f}" '
                f'fill="{colour}"><title>{_text(f"{when}: {name} ${value:,.2f}")}</title></rect>'
            )
            base += value
        if index % every == 0:
            text = f"{bucket:%H}h" if hourly else f"{bucket:%d}"
            body.append(
                f'<text x="{frame.x(index + 0.5):.1f}" y="{frame.height - 8}" text-anchor="middle" '
                f'fill="currentColor">{_text(text)}</text>'
            )
    return _svg(label, body)
