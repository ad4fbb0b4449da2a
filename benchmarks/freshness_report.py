"""The freshness benchmark's figures and report, from the changes bench_freshness.py measured (the same
dict it writes with --json). Not a benchmark itself (run_all.py only runs bench_*.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchlib import now_iso, percentile

GOAL_P95_S = 8.0
GOAL_WEBHOOK_P95_S = 3.0


# Finishes (bench_freshness.measure_finishes): a batch within this many simulated seconds of its own end
# is taken there; any other is cancelled, its cancelling lasting CANCEL_DELAY_S (simulated seconds).
NATURAL_END_S = 300
CANCEL_DELAY_S = (5, 30)


@dataclass
class Change:
    batch_id: str
    pk: int
    before: int
    after: int
    advanced_s: float
    at: float  # monotonic time of the advance that made it
    db_at: float | None = None
    seen_at: float | None = None
    timed_out: bool = False
    how: str = ""  # finishes: "its end" (its planned outcome reached) or "cancelled" (through the API)

    @property
    def delay(self) -> float | None:
        return None if self.seen_at is None else self.seen_at - self.at


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "mean": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
    }


def _delays(args, changes: list[Change]) -> dict[str, dict[str, float]]:
    # A change never seen counts as the timeout: it can only make the percentiles worse.
    delays = [change.delay if change.delay is not None else args.change_timeout for change in changes]
    seen = [change for change in changes if change.db_at is not None and change.seen_at]
    return {
        "total": _stats(delays),
        "sync": _stats([change.db_at - change.at for change in seen]),  # type: ignore[operator]
        "page": _stats([change.seen_at - change.db_at for change in seen]),  # type: ignore[operator]
    }


def _finish_kinds(args, finishes: list[Change]) -> str:
    parts = []
    for how, label in (
        ("its end", f"reached their own end (the clock advanced at most {NATURAL_END_S} simulated s)"),
        (
            "cancelled",
            "were cancelled through the API and taken past a {}-{} s cancelling time".format(*CANCEL_DELAY_S),
        ),
    ):
        kind = [change for change in finishes if change.how == how]
        p95 = _delays(args, kind)["total"].get("p95") if kind else None
        parts.append(f"{len(kind)} {label}" + (f" (p95 {p95:.1f} s)" if p95 is not None else ""))
    return "finishes: " + "; ".join(parts) + ", so that the running batches last the whole phase."


def figures(
    args, changes: list[Change], skipped: int, context: dict[str, Any], finishes: list[Change]
) -> dict[str, Any]:
    timeouts = [change for change in changes + finishes if change.timed_out]
    polled, hooked = _delays(args, changes), _delays(args, finishes)
    p95 = polled["total"]["p95"]
    hooked_p95 = hooked["total"]["p95"] if hooked["total"] else float("inf")
    met = (
        p95 <= GOAL_P95_S
        and hooked_p95 <= GOAL_WEBHOOK_P95_S
        and not timeouts
        and len(changes) >= args.changes
        and len(finishes) >= args.finishes
    )
    text = (
        f"change -> screen p95 = {p95:.1f} s at the defaults (goal <= {GOAL_P95_S:g} s), "
        f"{hooked_p95:.1f} s for a finish with webhooks (goal <= {GOAL_WEBHOOK_P95_S:g} s), "
        f"{len(changes)} + {len(finishes)} changes: {'met' if met else 'NOT met'}"
    )
    if timeouts:
        text += f"; {len(timeouts)} not seen within {args.change_timeout:g} s"
    columns = ["delay", "p50", "p95", "mean", "min", "max"]

    def row(label: str, values: dict[str, float]) -> list[str]:
        return [
            label,
            *(f"{values[name]:.1f} s" if values else "-" for name in ("p50", "p95", "mean", "min", "max")),
        ]

    return {
        "benchmark": "freshness",
        "title": (
            f"Freshness: a change in the API to the open page in Chromium, {len(changes)} changes polled "
            f"and {len(finishes)} finishes with webhooks"
        ),
        "date": now_iso(),
        "changes_requested": args.changes,
        "changes_measured": len(changes),
        "finishes_requested": args.finishes,
        "finishes_measured": len(finishes),
        "finishes_by_cancel": sum(1 for change in finishes if change.how == "cancelled"),
        "timeouts": len(timeouts),
        "skipped_candidates": skipped,
        "simulated_batches": args.batches,
        "push": not args.no_push,
        "gap_s": [args.gap_min, args.gap_max],
        **context,
        "delays_s": polled,
        "webhook_delays_s": hooked,
        "changes": [change.__dict__ | {"delay": change.delay} for change in changes],
        "finishes": [change.__dict__ | {"delay": change.delay} for change in finishes],
        "table": {
            "columns": columns,
            "rows": [
                row("progress -> on screen (defaults, polling)", polled["total"]),
                row("of which: change -> in the database (sync)", polled["sync"]),
                row("of which: database -> on screen (page poll)", polled["page"]),
                row("finish -> on screen (webhooks)", hooked["total"]),
                row("of which: finish -> in the database (webhook)", hooked["sync"]),
                row("of which: database -> on screen (page poll)", hooked["page"]),
            ],
        },
        "notes": [
            "defaults: a watched connection's refresh every 5 s (each records when the next is due; beat's "
            "dispatcher, every second, starts it then), the page's one poll every 5 s, timed by the "
            "server to land about 1.5-3 s after the next refresh, "
            + (
                "and at once when the events server's stream says the connection changed (push)."
                if not args.no_push
                else "and NO events server (--no-push): the page learns of a change on its timer alone."
            ),
            f"stack: simulator (thread, {args.batches} batches, frozen clock), redis-server (the broker "
            "and, as in production, Django's cache), a Celery worker (prefork, concurrency 2) and beat, "
            "runserver with DJANGO_DEBUG=0, SQLite; headless Chromium showing /?status=in_progress.",
            f"changes {args.gap_min:g}-{args.gap_max:g} s apart at random, so they fall anywhere in the "
            "refresh and poll cycles; the row is read every 0.1 s.",
            _finish_kinds(args, finishes),
            "webhooks: simulator/webhooks.py signs and posts batch.completed/failed/expired/cancelled to "
            "/webhooks/openai/simulated/ within 0.1 s of a finish; the dashboard queues a refresh of that "
            "batch (alerts.tasks.refresh_batch_now); the page learns of that write as above.",
        ],
        "headline": {
            "name": "change -> screen p95, polled and with webhooks",
            "p95_s": p95,
            "p50_s": polled["total"]["p50"],
            "webhook_p95_s": hooked_p95,
            "goal_s": GOAL_P95_S,
            "webhook_goal_s": GOAL_WEBHOOK_P95_S,
            "met": met,
            "text": text,
        },
    }
