"""One simulated batch: the plan fixed when it is created, and its status at any simulated time.

A batch is a plan fixed when it is created (how long validation takes, whether it fails, a
throughput curve with bursts and pauses, how long finalizing takes) plus, once someone cancels it,
the moment of cancellation. Its status and counters are a pure function of the simulated time, so
nothing runs in the background, nothing can go backwards while the clock only moves forwards, and
a status is only worked out for the batches a request actually looks at.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from typing import Any

from simulator.sources import RequestSource

DAY = 86_400
FILE_TTL = 30 * DAY  # batch input and output files expire after 30 days by default
# Every Unix time in a batch object.
BATCH_TIME_FIELDS = (
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)
FAR_FUTURE = 2**62

# The API's statuses, kept here rather than imported from batches.statuses because the simulator models
# the API from outside the dashboard; tests/test_statuses.py keeps the two lists equal.
STATUSES: tuple[str, ...] = (
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
)
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class Plan:
    """How a batch will go if nobody cancels it; durations in simulated seconds."""

    validate_s: int
    run_s: int
    finalize_s: int
    errors: tuple[dict[str, Any], ...] | None = None  # validation fails with these


class ProgressCurve:
    """Requests processed x seconds after in_progress began: piecewise linear, uneven.

    Segments have random lengths and rates: some are pauses, some are bursts. The last one always
    makes progress, so everything is processed exactly at `run_s`, never earlier.
    """

    def __init__(self, total: int, run_s: int, key: str) -> None:
        self.total = total
        self.run_s = run_s
        self._key = key
        self._times: list[int] | None = None
        self._counts: list[int] = []

    def _build(self) -> tuple[list[int], list[int]]:
        if self._times is not None:
            return self._times, self._counts
        total, run_s = self.total, max(1, self.run_s)
        rng = random.Random(self._key)
        segments = min(run_s, rng.randint(6, 24))
        cuts = sorted(set(rng.randint(1, run_s - 1) for _ in range(segments - 1))) if run_s > 1 else []
        times = [0, *cuts, run_s]
        weights: list[float] = []
        for j in range(len(times) - 1):
            roll = rng.random()
            if roll < 0.15 and j < len(times) - 2:
                rate = 0.0  # a pause
            elif roll > 0.85:
                rate = rng.uniform(2.0, 4.0)  # a burst
            else:
                rate = rng.uniform(0.4, 1.4)
            weights.append(rate * (times[j + 1] - times[j]))
        cumulative = [0.0]
        for weight in weights:
            cumulative.append(cumulative[-1] + weight)
        scale = total / cumulative[-1] if cumulative[-1] > 0 else 0.0
        counts = [min(max(total - 1, 0), math.floor(w * scale)) for w in cumulative[:-1]]
        counts.append(total)
        self._counts = counts
        self._times = times
        return times, counts

    def count(self, elapsed: int) -> int:
        if elapsed <= 0 or self.total == 0:
            return 0
        if elapsed >= self.run_s:
            return self.total
        times, counts = self._build()
        j = bisect.bisect_right(times, elapsed) - 1
        t0, t1, c0, c1 = times[j], times[j + 1], counts[j], counts[j + 1]
        return c0 + (c1 - c0) * (elapsed - t0) // (t1 - t0)

    def finished_at(self, i: int) -> int:
        """Seconds after in_progress began at which request i (0-based) was processed."""
        times, counts = self._build()
        j = bisect.bisect_left(counts, i + 1)
        if j == 0:
            return 0
        t0, t1, c0, c1 = times[j - 1], times[j], counts[j - 1], counts[j]
        return t0 + -(-(i + 1 - c0) * (t1 - t0) // (c1 - c0))


@dataclass(frozen=True, slots=True)
class Snap:
    """A batch as seen at one simulated moment."""

    status: str
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    total: int = 0
    processed: int = 0
    failed: int = 0
    unfinished: str | None = None  # error code written for requests never run

    @property
    def terminal_at(self) -> int | None:
        return self.completed_at or self.failed_at or self.expired_at or self.cancelled_at

    @property
    def completed(self) -> int:
        return self.processed - self.failed

    @property
    def has_output(self) -> bool:
        return self.status in TERMINAL and self.completed > 0

    @property
    def has_errors(self) -> bool:
        unfinished = self.total - self.processed if self.unfinished else 0
        return self.status in TERMINAL and (self.failed > 0 or unfinished > 0)


class SimBatch:
    """One batch of the simulated world (neither the dashboard's model nor the API client's type)."""

    __slots__ = (
        "_final",
        "_progress",
        "cancel_at",
        "cancel_s",
        "created_at",
        "endpoint",
        "error_file_id",
        "expires_at",
        "id",
        "input_file_id",
        "metadata",
        "output_file_id",
        "output_ttl",
        "plan",
        "requests",
        "seq",
    )

    def __init__(
        self,
        *,
        batch_id: str,
        created_at: int,
        endpoint: str,
        input_file_id: str,
        metadata: dict[str, str] | None,
        plan: Plan,
        requests: RequestSource | None,
        output_file_id: str,
        error_file_id: str,
        output_ttl: int = FILE_TTL,
        progress_key: str,
    ) -> None:
        self.id = batch_id
        self.seq = 0
        self.created_at = created_at
        self.expires_at = created_at + DAY
        self.endpoint = endpoint
        self.input_file_id = input_file_id
        self.metadata = metadata
        self.plan = plan
        self.requests = requests
        self.output_file_id = output_file_id
        self.error_file_id = error_file_id
        self.output_ttl = output_ttl
        self.cancel_at: int | None = None
        self.cancel_s: int | None = None
        total = requests.total if requests is not None and plan.errors is None else 0
        self._progress = ProgressCurve(total, plan.run_s, progress_key)
        self._final: Snap | None = None

    @property
    def total(self) -> int:
        return self._progress.total

    @property
    def in_progress_at(self) -> int:
        """When in_progress begins (or would have begun) if validation passes."""
        return self.created_at + self.plan.validate_s

    @property
    def done_at(self) -> int:
        return self.in_progress_at + self.plan.run_s

    def _failed(self, processed: int) -> int:
        return self.requests.failed_among(processed) if self.requests is not None else 0

    def snap(self, t: int) -> Snap:
        ip = self.in_progress_at
        if self.cancel_at is not None and t >= self.cancel_at:
            cancel_at = self.cancel_at
            started = cancel_at >= ip
            processed = self._progress.count(cancel_at - ip) if started else 0
            cancelled_at = cancel_at + (self.cancel_s or 0)
            return Snap(
                status="cancelled" if t >= cancelled_at else "cancelling",
                in_progress_at=ip if started else None,
                cancelling_at=cancel_at,
                cancelled_at=cancelled_at if t >= cancelled_at else None,
                total=self.total if started else 0,
                processed=processed,
                failed=self._failed(processed),
                unfinished="batch_cancelled",
            )
        if t < ip:
            return Snap(status="validating")
        if self.plan.errors is not None:
            return Snap(status="failed", failed_at=ip)
        done = self.done_at
        if done > self.expires_at and t >= self.expires_at:
            processed = self._progress.count(self.expires_at - ip)
            return Snap(
                status="expired",
                in_progress_at=ip,
                expired_at=self.expires_at,
                total=self.total,
                processed=processed,
                failed=self._failed(processed),
                unfinished="batch_expired",
            )
        if t < done:
            processed = self._progress.count(t - ip)
            return Snap(
                status="in_progress",
                in_progress_at=ip,
                total=self.total,
                processed=processed,
                failed=self._failed(processed),
            )
        failed = self._failed(self.total)
        finished = done + self.plan.finalize_s
        return Snap(
            status="finalizing" if t < finished else "completed",
            in_progress_at=ip,
            finalizing_at=done,
            completed_at=finished if t >= finished else None,
            total=self.total,
            processed=self.total,
            failed=failed,
        )

    def final(self) -> Snap:
        """Where the batch ends up unless it is cancelled from now on."""
        if self._final is None:
            self._final = self.snap(FAR_FUTURE)
        return self._final

    def cancel(self, at: int, seconds: int) -> None:
        self.cancel_at = at
        self.cancel_s = seconds
        self._final = None

    def finished_at(self, i: int) -> int:
        return self.in_progress_at + self._progress.finished_at(i)

    def to_dict(self, t: int) -> dict[str, Any]:
        snap = self.snap(t)
        usage: dict[str, Any] | None = None
        model: str | None = None
        if snap.in_progress_at is not None and self.requests is not None:
            model = self.requests.model
            u = self.requests.usage_among(snap.processed)
            usage = {
                "input_tokens": u.input_tokens,
                "input_tokens_details": {"cached_tokens": u.cached_tokens},
                "output_tokens": u.output_tokens,
                "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
                "total_tokens": u.input_tokens + u.output_tokens,
            }
        errors = None
        if snap.status == "failed" and self.plan.errors is not None:
            errors = {"object": "list", "data": [dict(e) for e in self.plan.errors]}
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": model,
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": snap.status,
            "output_file_id": self.output_file_id if snap.has_output else None,
            "error_file_id": self.error_file_id if snap.has_errors else None,
            "created_at": self.created_at,
            "in_progress_at": snap.in_progress_at,
            "expires_at": self.expires_at,
            "finalizing_at": snap.finalizing_at,
            "completed_at": snap.completed_at,
            "failed_at": snap.failed_at,
            "expired_at": snap.expired_at,
            "cancelling_at": snap.cancelling_at,
            "cancelled_at": snap.cancelled_at,
            "request_counts": {
                "total": snap.total,
                "completed": snap.completed,
                "failed": snap.failed,
            },
            "usage": usage,
            "metadata": dict(self.metadata) if self.metadata is not None else None,
        }

    def plan_dict(self) -> dict[str, Any]:
        """The planned timeline, for tests that need to know when things will happen."""
        final = self.final()
        return {
            "id": self.id,
            "created_at": self.created_at,
            "in_progress_at": self.in_progress_at,
            "fails_validation": self.plan.errors is not None,
            "done_at": self.done_at,
            "completed_at": self.done_at + self.plan.finalize_s,
            "expires_at": self.expires_at,
            "will_expire": self.plan.errors is None and self.done_at > self.expires_at,
            "cancel_at": self.cancel_at,
            "cancel_seconds": self.cancel_s,
            "total": self.total,
            "final_status": final.status,
            "final_at": final.terminal_at,
        }
