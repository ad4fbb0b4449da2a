"""The statuses a batch goes through on the API, and what the dashboard makes of each: the one place
they are listed.

Nothing here imports Django, so that the API client, the models, the sync, the pages, the alerts and
the benchmarks all read the same lists. The simulator (simulator/lifecycle.py) keeps its own copy on
purpose, as it models the API from outside the project; tests/test_statuses.py keeps the two equal.

A status the API adds later is neither known nor terminal: it is stored and shown as it comes (as
"unknown"), and the batch is treated as still active.
"""

from __future__ import annotations

# In life-cycle order, the order of the list page's status cards and of the metrics' series.
KNOWN_STATUSES: tuple[str, ...] = (
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
)
# A batch in one of these will not change again. The order is the one outcomes are shown in (charts).
TERMINAL_STATUSES: tuple[str, ...] = ("completed", "failed", "expired", "cancelled")
# Known and not yet terminal, in life-cycle order: the phases a batch passes through before its outcome.
ACTIVE_STATUSES: tuple[str, ...] = tuple(s for s in KNOWN_STATUSES if s not in TERMINAL_STATUSES)
# The API accepts a cancel only before the batch has begun finalizing.
CANCELLABLE_STATUSES: tuple[str, ...] = ("validating", "in_progress")

# The API timestamp that marks entering each status (a batch is validating from its creation).
STATUS_TIMESTAMP_FIELD: dict[str, str] = {
    "validating": "created_at",
    "in_progress": "in_progress_at",
    "finalizing": "finalizing_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelling": "cancelling_at",
    "cancelled": "cancelled_at",
}

# The CSS class of a status's badges and cards (static/css/app.css).
STATUS_CLASS: dict[str, str] = {
    "completed": "ok",
    "failed": "bad",
    "expired": "bad",
    "cancelled": "muted",
    "cancelling": "warn",
    "in_progress": "run",
    "finalizing": "run",
    "validating": "wait",
}
UNKNOWN_CLASS = "unknown"


def status_class(status: str) -> str:
    return STATUS_CLASS.get(status, UNKNOWN_CLASS)


def status_label(status: str) -> str:
    return status.replace("_", " ")
