"""Server-rendered SVG charts: pure functions from plain data to an SVG string.

No script, no external resource and no style attribute, so the Content-Security-Policy has nothing to
allow; colours are presentation attributes, and text uses currentColor so it follows the page's theme.
Every piece of text goes through `_text` (XML escaping), so a batch id or connection name cannot break
out of the markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from itertools import pairwise

from batches.eta import rate_text
from batches.statuses import TERMINAL_STATUSES

# A narrow drawing with large text: the SVG scales to its box, and a phone's box (about 340 px) must
# still show labels of about 10 px; on a wide screen the stylesheet caps the chart's width.
WIDTH, HEIGHT = 480, 200
FONT_SIZE = 14
# The list page's chart sits above the table: lower, so that the table stays in view.
OUTCOMES_HEIGHT = 150
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 26, 28
# Resampling keeps the markup small and the throughput readable however many snapshots a batch has.
THROUGHPUT_BUCKETS = 48
MAX_LINE_POINTS = 240

# One per terminal status (the outcome charts draw them in TERMINAL_STATUSES order), and the rate.
COLOURS = {
    "completed": "#1a7f37",
    "failed": "#cf222e",
    "expired": "#bf8700",
    "cancelled": "#6e7781",
    "rate": "#0969da",
}


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _num(value: float) -> str:
    """Compact: 12, 3.5, 1.2k, 4.1M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}".removesuffix(".0") + suffix
    if abs(value) >= 10 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.1f}"


def nice_scale(value: float, *, whole: bool = False) -> tuple[float, float]:
    """(axis maximum, tick step): a step of 1, 2 or 5 times a power of ten giving at most five ticks
    above zero, and the smallest multiple of it that reaches `value`. `whole` keeps steps of counts >= 1."""
    if value <= 0 or not math.isfinite(value):
        return 1.0, 1.0 if whole else 0.25
    rough = value / 5
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    if whole:
        step = max(step, 1.0)
    return step * math.ceil(value / step * (1 - 1e-9)), step


@dataclass(frozen=True)
class _Frame:
    """Maps data to the plot area."""

    x0: float
    x1: float
    y_max: float
    y_step: float
    height: int = HEIGHT

    def x(self, value: float) -> float:
        span = self.x1 - self.x0
        return LEFT + (WIDTH - LEFT - RIGHT) * ((value - self.x0) / span if span else 0.0)

    def y(self, value: float) -> float:
        return TOP + (self.height - TOP - BOTTOM) * (1 - (value / self.y_max if self.y_max else 0.0))


def _svg(label: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="{_text(label)}" font-family="system-ui, sans-serif" '
        f'font-size="{FONT_SIZE}"><title>{_text(label)}</title>' + "".join(body) + "</svg>"
    )


def _empty(label: str, message: str) -> str:
    return _svg(
        label,
        [
            f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle" fill="currentColor">'
            f"{_text(message)}</text>"
        ],
    )


def _y_axis(frame: _Frame, unit: str = "") -> list[str]:
    parts = []
    for index in range(round(frame.y_max / frame.y_step) + 1):
        value = frame.y_step * index
        y = frame.y(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" '
            f'stroke-opacity="{0.35 if index == 0 else 0.12}"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="currentColor">'
            f"{_text(_num(value) + unit)}</text>"
        )
    return parts


def _time_label(moment: datetime, span_seconds: float) -> str:
    # Ticks of a span under ten minutes can fall in the same minute: they need their seconds.
    if span_seconds < 600:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%H:%M" if span_seconds < 86400 else "%b %d %H:%M")


def _time_axis(frame: _Frame, start: datetime, end: datetime) -> list[str]:
    span = (end - start).total_seconds()
    parts = []
    previous = None
    for step in range(5):
        seconds = frame.x0 + (frame.x1 - frame.x0) * step / 4
        label = _time_label(datetime.fromtimestamp(seconds, tz=start.tzinfo), span)
        if label == previous:
            continue  # a span of seconds: ticks that would read the same once are enough
        previous = label
        anchor = "start" if step == 0 else "end" if step == 4 else "middle"
        parts.append(
            f'<text x="{frame.x(seconds):.1f}" y="{frame.height - 8}" text-anchor="{anchor}" '
            f'fill="currentColor">{_text(label)}</text>'
        )
    return parts


def _thin(points: Sequence, limit: int) -> list:
    """At most `limit` points, evenly picked, first and last kept."""
    if len(points) <= limit:
        return list(points)
    step = (len(points) - 1) / (limit - 1)
    return [points[round(index * step)] for index in range(limit)]


def _done_at(points: Sequence[tuple[float, float]], moment: float) -> float:
    if moment <= points[0][0]:
        return points[0][1]
    for (t0, d0), (t1, d1) in pairwise(points):
        if moment <= t1:
            return d1 if t1 == t0 else d0 + (d1 - d0) * (moment - t0) / (t1 - t0)
    return points[-1][1]


def throughput_rates(
    points: Sequence[tuple[datetime, int]],
    *,
    until: datetime | None = None,
    buckets: int = THROUGHPUT_BUCKETS,
) -> list[tuple[datetime, datetime, float]]:
    """Requests per minute in equal time buckets from the first point to `until` (or the last point):
    (bucket start, bucket end, rate). Counts between observations are read as a line."""
    if len(points) < 1:
        return []
    ordered = sorted(points, key=lambda point: point[0])
    end = max(until or ordered[-1][0], ordered[-1][0])
    start = ordered[0][0]
    if end <= start:
        return []
    series = [(moment.timestamp(), float(done)) for moment, done in ordered]
    if end > ordered[-1][0]:
        series.append((end.timestamp(), series[-1][1]))
    x0, x1 = start.timestamp(), end.timestamp()
    width = (x1 - x0) / buckets
    rates = []
    for index in range(buckets):
        a, b = x0 + index * width, x0 + (index + 1) * width
        rate = max(_done_at(series, b) - _done_at(series, a), 0.0) / (width / 60)
        rates.append(
            (datetime.fromtimestamp(a, tz=start.tzinfo), datetime.fromtimestamp(b, tz=start.tzinfo), rate)
        )
    return rates


def throughput_svg(
    points: Sequence[tuple[datetime, int]],
    *,
    until: datetime | None = None,
    label: str = "Requests finished per minute over time",
) -> str:
    """A step chart of requests finished per minute over the batch's life."""
    rates = throughput_rates(points, until=until)
    if not rates:
        return _empty(label, "Not enough history yet.")
    frame = _Frame(rates[0][0].timestamp(), rates[-1][1].timestamp(), *nice_scale(max(r for *_, r in rates)))
    path = [f"M{frame.x(frame.x0):.1f},{frame.y(0):.1f}"]
    for start, end, rate in rates:
        path.append(f"L{frame.x(start.timestamp()):.1f},{frame.y(rate):.1f}")
        path.append(f"L{frame.x(end.timestamp()):.1f},{frame.y(rate):.1f}")
    path.append(f"L{frame.x(frame.x1):.1f},{frame.y(0):.1f}Z")
    peak = max(r for *_, r in rates)
    body = [
        # The unit is in the figure's caption ("Requests per minute"): labels stay short at FONT_SIZE.
        *_y_axis(frame),
        f'<path class="series-rate" d="{" ".join(path)}" fill="{COLOURS["rate"]}" fill-opacity="0.18" '
        f'stroke="{COLOURS["rate"]}" stroke-width="1.5"/>',
        *_time_axis(frame, rates[0][0], rates[-1][1]),
        f'<text x="{WIDTH - RIGHT}" y="15" text-anchor="end" fill="currentColor">'
        f"{_text(f'peak {rate_text(peak)}')}</text>",
    ]
    return _svg(label, body)


def progress_svg(
    snapshots: Sequence[tuple[datetime, int, int, int]],
    *,
    until: datetime | None = None,
    label: str = "Percent of requests done and failed over time",
) -> str:
    """Lines of the share of requests done (completed + failed) and failed, in percent, over time.
    `snapshots` are (time, completed, failed, total)."""
    rows = sorted((s for s in snapshots if s[3] > 0), key=lambda s: s[0])
    if not rows:
        return _empty(label, "No requests counted yet.")
    end = max(until or rows[-1][0], rows[-1][0])
    if end <= rows[0][0]:
        return _empty(label, "Not enough history yet.")
    frame = _Frame(rows[0][0].timestamp(), end.timestamp(), 100.0, 25.0)
    done_line: list[tuple[float, float]] = []
    failed_line: list[tuple[float, float]] = []
    for moment, completed, failed, total in _thin(rows, MAX_LINE_POINTS):
        x = frame.x(moment.timestamp())
        done_line.append((x, frame.y(min(100.0, 100 * (completed + failed) / total))))
        failed_line.append((x, frame.y(min(100.0, 100 * failed / total))))
    if end > rows[-1][0]:  # unchanged since the last snapshot, up to now
        done_line.append((frame.x(end.timestamp()), done_line[-1][1]))
        failed_line.append((frame.x(end.timestamp()), failed_line[-1][1]))
    body = [
        *_y_axis(frame, "%"),
        f'<polyline class="series-completed" points="{_points(done_line)}" fill="none" '
        f'stroke="{COLOURS["completed"]}" stroke-width="2"/>',
        f'<polyline class="series-failed" points="{_points(failed_line)}" fill="none" '
        f'stroke="{COLOURS["failed"]}" stroke-width="1.5" stroke-dasharray="4 3"/>',
        *_time_axis(frame, rows[0][0], end),
        _legend([("done", COLOURS["completed"], "completed"), ("failed", COLOURS["failed"], "failed")]),
    ]
    return _svg(label, body)


def _points(line: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in line)


def _legend(items: Sequence[tuple[str, str, str]], x: float = LEFT + 8) -> str:
    """(text, colour, series) per entry; the series names the class dark mode recolours."""
    parts = []
    for text, colour, series in items:
        parts.append(
            f'<rect class="series-{series}" x="{x:.1f}" y="4" width="11" height="11" fill="{colour}"/>'
        )
        parts.append(f'<text x="{x + 15:.1f}" y="15" fill="currentColor">{_text(text)}</text>')
        # About the advance of a digit or letter at FONT_SIZE, so that entries never overlap.
        x += 24 + 0.56 * FONT_SIZE * len(text)
    return "<g>" + "".join(parts) + "</g>"


def outcomes_svg(days: Sequence[date], counts: dict[tuple[date, str], int]) -> str:
    """Stacked bars: finished batches per day, by outcome."""
    label = f"Batches finished per day over the last {len(days)} days, by outcome"
    totals = {day: sum(counts.get((day, status), 0) for status in TERMINAL_STATUSES) for day in days}
    if not days:
        return _empty(label, "No days to show.")
    # Headroom above the highest bar for its total.
    y_max, y_step = nice_scale(max(totals.values(), default=0) * 1.15, whole=True)
    frame = _Frame(0, len(days), y_max, y_step, OUTCOMES_HEIGHT)
    slot = (WIDTH - LEFT - RIGHT) / len(days)
    body = _y_axis(frame)
    for index, day in enumerate(days):
        x = frame.x(index) + slot * 0.18
        base = 0
        for status in TERMINAL_STATUSES:
            n = counts.get((day, status), 0)
            if not n:
                continue
            top, bottom = frame.y(base + n), frame.y(base)
            body.append(
                f'<rect class="series-{status}" x="{x:.1f}" y="{top:.1f}" width="{slot * 0.64:.1f}" '
                f'height="{bottom - top:.1f}" '
                f'fill="{COLOURS[status]}"><title>{_text(f"{day:%a %b %d}: {n} {status}")}</title></rect>'
            )
            base += n
        middle = frame.x(index + 0.5)
        if totals[day]:
            body.append(
                f'<text x="{middle:.1f}" y="{frame.y(totals[day]) - 3:.1f}" text-anchor="middle" '
                f'fill="currentColor">{_text(totals[day])}</text>'
            )
        body.append(
            f'<text x="{middle:.1f}" y="{frame.height - 8}" text-anchor="middle" fill="currentColor">'
            f"{_text(f'{day:%a %d}')}</text>"
        )
    sums = {status: sum(counts.get((day, status), 0) for day in days) for status in TERMINAL_STATUSES}
    body.append(
        _legend([(f"{status} {sums[status]}", COLOURS[status], status) for status in TERMINAL_STATUSES])
    )
    return _svg(label, body, OUTCOMES_HEIGHT)
