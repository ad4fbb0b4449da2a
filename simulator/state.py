"""The simulated world behind the fake Batch and Files APIs: files, batches, a clock, seeding.

Pure Python and independent of Django and HTTP, so it can be driven directly in tests. Every public
method of `SimWorld` takes its one lock, which makes the world safe to share between the threads of
the HTTP server.

A batch is a plan fixed when it is created (how long validation takes, whether it fails, a
throughput curve with bursts and pauses, how long finalizing takes) plus, once someone cancels it,
the moment of cancellation. Its status and counters are a pure function of the simulated time, so
nothing runs in the background, nothing can go backwards while the clock only moves forwards, and
a status is only worked out for the batches a request actually looks at.
"""

from __future__ import annotations

import base64
import bisect
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator import content as c

DAY = 86_400
# Every Unix time in a batch or file object.
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
FILE_TIME_FIELDS = ("created_at", "expires_at")
FILE_TTL = 30 * DAY  # batch input and output files expire after 30 days by default
FAR_FUTURE = 2**62
STATE_VERSION = 1

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
UPLOAD_PURPOSES: tuple[str, ...] = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
CREATE_BATCH_FIELDS = frozenset(
    {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}
)
MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class ApiError(Exception):
    """An error answer of the API, with the status code and body the real API would send."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def not_found_batch(batch_id: str) -> ApiError:
    return ApiError(404, f"No batch found with id '{batch_id}'.")


def not_found_file(file_id: str) -> ApiError:
    return ApiError(404, f"No such File object: {file_id}", param="id")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def invalid_type(param: str, expected: str, value: Any) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, value: Any, allowed: tuple[str, ...]) -> ApiError:
    supported = ", ".join(f"'{a}'" for a in allowed)
    return ApiError(
        400,
        f"Invalid value: '{value}'. Supported values are: {supported}.",
        param=param,
        code="invalid_value",
    )


def missing_parameter(param: str) -> ApiError:
    return ApiError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def integer_out_of_range(param: str, value: int, minimum: int, maximum: int) -> ApiError:
    if value < minimum:
        return ApiError(
            400,
            f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param=param,
            code="integer_below_min_value",
        )
    return ApiError(
        400,
        f"Invalid '{param}': integer above maximum value. Expected a value <= {maximum}, "
        f"but got {value} instead.",
        param=param,
        code="integer_above_max_value",
    )


class SimClock:
    """Simulated time: start + wall time elapsed x speed + whatever tests advanced it by."""

    def __init__(self, start: float | None = None, speed: float = 1.0) -> None:
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"speed must be a finite number >= 0, got {speed!r}")
        self._start = time.time() if start is None else float(start)
        self._wall0 = time.monotonic()
        self._speed = speed
        self._advanced = 0.0
        self._last = self._start
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        with self._lock:
            value = self._start + (time.monotonic() - self._wall0) * self._speed + self._advanced
            # Never report an earlier time than before, whatever the platform clock does.
            self._last = max(self._last, value)
            return self._last

    def advance(self, seconds: float) -> float:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"can only move the clock forwards, got {seconds!r}")
        with self._lock:
            self._advanced += seconds
        return self.now()


class WallClockMap:
    """Where a simulated instant appears on the wall clock, for `wall_clock_timestamps`.

    Piecewise linear and non-decreasing. Each piece is (sim, wall, speed): from simulated instant
    `sim` on, t shows as `wall + (t - sim) / speed` (speed 0, a frozen clock, counts as 1), rounded
    to the nearest second. A new world has one piece, (origin, origin, speed), so every timestamp
    shows as `origin + (t - origin) / speed`, the seeded past included (the first piece extends
    backwards). A world loaded from a state file adds a piece where its clock resumes, pinned to
    the wall time of the restart, so what was shown before keeps its value and what happens from
    then on is again consistent with the real clock.
    """

    def __init__(self, pieces: list[tuple[float, float, float]]) -> None:
        if not pieces:
            raise ValueError("a wall clock map needs at least one piece")
        self.pieces: list[tuple[float, float, float]] = []
        self._starts: list[float] = []
        for sim, wall, speed in pieces:
            self.add(sim, wall, speed)

    def add(self, sim: float, wall: float, speed: float) -> None:
        if self._starts and sim < self._starts[-1]:
            raise ValueError("wall clock map pieces must start in order")
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"speed must be a finite number >= 0, got {speed!r}")
        self.pieces.append((float(sim), float(wall), float(speed)))
        self._starts.append(float(sim))

    def resume(self, sim: float, wall: float, speed: float) -> None:
        """A new piece from `sim` on, shown from `wall` on, never earlier than what came before."""
        self.add(sim, max(wall, self.exact(sim)), speed)

    def exact(self, t: float) -> float:
        i = max(0, bisect.bisect_right(self._starts, t) - 1)
        sim, wall, speed = self.pieces[i]
        return wall + (t - sim) / (speed if speed > 0 else 1.0)

    def __call__(self, t: float) -> int:
        # Half up rather than Python's half to even: plainly monotonic.
        return math.floor(self.exact(t) + 0.5)

    def to_list(self) -> list[list[float]]:
        return [list(piece) for piece in self.pieces]


@dataclass(frozen=True)
class Plan:
    """How a batch will go if nobody cancels it; durations in simulated seconds."""

    validate_s: int
    run_s: int
    finalize_s: int
    errors: tuple[dict[str, Any], ...] | None = None  # validation fails with these


class Progress:
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


class Batch:
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
        requests: c.RequestSource | None,
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
        self._progress = Progress(total, plan.run_s, progress_key)
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


class FileEntry:
    """A file: uploaded bytes, a seeded input file rendered on demand, or a batch's results."""

    __slots__ = (
        "batch",
        "created",
        "data",
        "deleted",
        "expires",
        "filename",
        "id",
        "kind",
        "purpose",
        "seq",
    )

    def __init__(
        self,
        *,
        file_id: str,
        kind: str,
        filename: str,
        purpose: str,
        seq: int,
        created: int | None = None,
        expires: int | None = None,
        data: bytes | None = None,
        batch: Batch | None = None,
    ) -> None:
        self.id = file_id
        self.kind = kind  # "upload", "input", "output" or "error"
        self.filename = filename
        self.purpose = purpose
        self.seq = seq
        self.created = created
        self.expires = expires
        self.data = data
        self.batch = batch
        self.deleted = False

    def created_at(self) -> int | None:
        """None for a result file its batch will never write."""
        if self.kind in ("upload", "input"):
            return self.created
        assert self.batch is not None
        final = self.batch.final()
        has = final.has_output if self.kind == "output" else final.has_errors
        return final.terminal_at if has else None

    def expires_at(self) -> int | None:
        if self.kind in ("upload", "input"):
            return self.expires
        created = self.created_at()
        assert self.batch is not None
        return None if created is None else created + self.batch.output_ttl

    def visible(self, t: int) -> bool:
        if self.deleted:
            return False
        created = self.created_at()
        if created is None or created > t:
            return False
        expires = self.expires_at()
        return expires is None or t < expires

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        batch = self.batch
        assert batch is not None and batch.requests is not None
        if self.kind == "input":
            assert isinstance(batch.requests, c.SeededRequests)
            return batch.requests.input_size()
        final = batch.final()
        if self.kind == "output":
            return batch.requests.output_size(final.processed)
        return batch.requests.error_size(final.processed, final.unfinished)

    def lines(self, present: Callable[[float], int] | None = None) -> Iterator[str]:
        """The file's lines; `present` maps the times written in result lines (`created`)."""
        batch = self.batch
        assert batch is not None and batch.requests is not None
        if self.kind == "input":
            assert isinstance(batch.requests, c.SeededRequests)
            return batch.requests.input_lines()
        final = batch.final()
        finished_at: Callable[[int], int] = batch.finished_at
        if present is not None:
            shown = present

            def shown_finished_at(i: int) -> int:
                return shown(batch.finished_at(i))

            finished_at = shown_finished_at
        if self.kind == "output":
            return batch.requests.output_lines(final.processed, finished_at)
        return batch.requests.error_lines(final.processed, final.unfinished, finished_at)

    def chunks(
        self, chunk_size: int = 64 * 1024, present: Callable[[float], int] | None = None
    ) -> Iterator[bytes]:
        if self.data is not None:
            for start in range(0, len(self.data), chunk_size):
                yield self.data[start : start + chunk_size]
            return
        buffer: list[bytes] = []
        size = 0
        for line in self.lines(present):
            encoded = line.encode()
            buffer.append(encoded)
            size += len(encoded)
            if size >= chunk_size:
                yield b"".join(buffer)
                buffer, size = [], 0
        if buffer:
            yield b"".join(buffer)

    def read_all(self) -> bytes:
        return self.data if self.data is not None else b"".join(self.chunks())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.size(),
            "created_at": self.created_at(),
            "expires_at": self.expires_at(),
            "filename": self.filename,
            "purpose": self.purpose,
            # Deprecated and typed as a string in the contract; omitted rather than null.
            "status": "processed",
        }


# --- seeding -----------------------------------------------------------------------------------

_SEED_MODELS: tuple[tuple[str, str, int], ...] = (
    ("/v1/chat/completions", "gpt-4o-mini", 20),
    ("/v1/chat/completions", "gpt-4.1", 8),
    ("/v1/chat/completions", "gpt-4.1-mini", 8),
    ("/v1/chat/completions", "o4-mini", 6),
    ("/v1/responses", "gpt-4.1-mini", 8),
    ("/v1/responses", "o4-mini", 5),
    ("/v1/responses", "gpt-5-mini", 5),
    ("/v1/embeddings", "text-embedding-3-small", 14),
    ("/v1/embeddings", "text-embedding-3-large", 5),
    ("/v1/completions", "gpt-3.5-turbo-instruct", 5),
    ("/v1/moderations", "omni-moderation-latest", 6),
)
_CID_PREFIXES: dict[str, tuple[str, ...]] = {
    "/v1/chat/completions": ("request", "task", "eval", "q"),
    "/v1/responses": ("req", "job", "item"),
    "/v1/embeddings": ("doc", "chunk", "emb"),
    "/v1/completions": ("prompt", "c"),
    "/v1/moderations": ("msg", "post"),
}
_PROJECTS = (
    "search-relevance",
    "support-triage",
    "catalog-enrichment",
    "eval-harness",
    "doc-embeddings",
    "trust-safety",
    "churn-insights",
)
_OWNERS = ("ana", "bo", "chen", "dmitri", "eve", "farah", "gus")
_RUNS = ("nightly", "backfill", "adhoc", "weekly", "eval", "reindex")
# Seeded batches in each status; live ones (validating, in_progress, finalizing, cancelling) are
# over-represented so a dashboard has something moving as soon as it starts.
_KIND_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("completed", 46),
    ("failed", 8),
    ("expired", 5),
    ("cancelled", 7),
    ("in_progress", 18),
    ("validating", 5),
    ("finalizing", 6),
    ("cancelling", 5),
)
_SCENARIO_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("invalid_json_line", 3),
    ("missing_custom_id", 1),
    ("missing_model", 1),
    ("mismatched_model", 2),
    ("invalid_url", 1),
    ("duplicate_custom_id", 1),
    ("token_limit_exceeded", 3),
)
_FAIL_LEVELS: tuple[tuple[int, int], ...] = ((0, 20), (1, 10), (2, 20), (4, 25), (6, 15), (10, 10))
SEED_SPREAD = 14 * DAY  # terminal seeded batches finished at some point in the last two weeks


def _weighted(rng: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def batch_id_for(key: str) -> str:
    return "batch_" + c.hex_digest(key, 32)


def file_id_for(key: str) -> str:
    return "file-" + c.base62_digest(key, 22)


class SimWorld:
    """Every file and batch of one simulated organisation, and the simulated clock."""

    def __init__(
        self,
        *,
        seed: int = 0,
        batches: int = 0,
        speed: float = 1.0,
        start: float | None = None,
        cancel_delay: tuple[int, int] = (60, 600),
        state_file: str | os.PathLike[str] | None = None,
        wall_clock_timestamps: bool = False,
    ) -> None:
        """`wall_clock_timestamps`: show every time the API sends (and `state()`) mapped back
        onto the wall clock, `origin + (t - origin) / speed` (see `WallClockMap`), so a clock
        running `speed` times faster never shows a client a time in its future. Everything else
        (`now`, `advance`, `plan`, the state file) stays in simulated seconds."""
        if batches < 0:
            raise ValueError("batches must be >= 0")
        low, high = cancel_delay
        if not 0 < low <= high:
            raise ValueError(f"cancel_delay must be (min, max) with 0 < min <= max: {cancel_delay}")
        self.seed = seed
        self.cancel_delay = (int(low), int(high))
        self.clock = SimClock(start, speed)
        self.origin = int(self.clock.now())
        self.wall_clock_timestamps = wall_clock_timestamps
        self.wall_clock = WallClockMap([(self.origin, self.origin, speed)])
        self.state_file = Path(state_file) if state_file else None
        self._lock = threading.RLock()
        self._batches: list[Batch] = []  # oldest first; lists are served from the end
        self._batch_by_id: dict[str, Batch] = {}
        self._files: dict[str, FileEntry] = {}
        self._file_order: list[FileEntry] | None = None
        self._file_keys: list[tuple[int, int]] = []
        self._file_pos: dict[str, int] = {}
        self._seq = 0
        self._uploads = 0
        self._api_batch_count = 0
        # Every change made through the API, in order; replaying it rebuilds the world exactly.
        self._log: list[dict[str, Any]] = []
        self._seeded = batches
        self._seed(batches)

    # --- time ---------------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.clock.now())

    def advance(self, seconds: float) -> int:
        with self._lock:
            self.clock.advance(seconds)
            self._persist()
            return self.now()

    def present(self, t: int) -> int:
        """A simulated instant as the API shows it: on the wall clock if that option is on."""
        return self.wall_clock(t) if self.wall_clock_timestamps else t

    def _presented(self, obj: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
        if self.wall_clock_timestamps:
            for name in names:
                if obj[name] is not None:
                    obj[name] = self.wall_clock(obj[name])
        return obj

    def _batch_dict(self, batch: Batch, t: int) -> dict[str, Any]:
        return self._presented(batch.to_dict(t), BATCH_TIME_FIELDS)

    def _file_dict(self, entry: FileEntry) -> dict[str, Any]:
        return self._presented(entry.to_dict(), FILE_TIME_FIELDS)

    # --- files --------------------------------------------------------------------------------

    def create_file(
        self,
        *,
        filename: str,
        purpose: str,
        data: bytes,
        expires_after: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        if purpose not in UPLOAD_PURPOSES:
            raise invalid_value("purpose", purpose, UPLOAD_PURPOSES)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ApiError(
                400,
                f"File is too large: {len(data)} bytes. The maximum file size is {MAX_UPLOAD_BYTES} bytes.",
                param="file",
            )
        if purpose == "batch" and not filename.lower().endswith(".jsonl"):
            raise ApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
        ttl: int | None = FILE_TTL if purpose == "batch" else None
        if expires_after is not None:
            ttl = _expiry_seconds(expires_after, "expires_after")
        with self._lock:
            op = {"op": "upload", "at": self.now(), "filename": filename, "purpose": purpose}
            op.update(ttl=ttl, data=data)
            entry = self._apply(op)
            return self._file_dict(entry)

    def get_file(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            return self._file_dict(self._visible_file(file_id, self.now()))

    def delete_file(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            self._visible_file(file_id, self.now())
            self._apply({"op": "delete", "at": self.now(), "id": file_id})
            return {"id": file_id, "object": "file", "deleted": True}

    def open_file(self, file_id: str) -> tuple[int, Iterator[bytes]]:
        """The size and the bytes of a file; the bytes may be produced after the lock is gone."""
        with self._lock:
            entry = self._visible_file(file_id, self.now())
            # A visible result file belongs to a terminal batch, so nothing it reads can change.
            present = self.wall_clock if self.wall_clock_timestamps else None
            return entry.size(), entry.chunks(present=present)

    def list_files(
        self,
        *,
        purpose: str | None = None,
        limit: int = 10_000,
        after: str | None = None,
        order: str = "desc",
    ) -> dict[str, Any]:
        if not 1 <= limit <= 10_000:
            raise integer_out_of_range("limit", limit, 1, 10_000)
        if order not in ("asc", "desc"):
            raise invalid_value("order", order, ("asc", "desc"))
        with self._lock:
            t = self.now()
            entries = self._file_index()
            newest = bisect.bisect_right(self._file_keys, (t, FAR_FUTURE))  # excludes the future
            if after is not None:
                if after not in self._file_pos:
                    raise ApiError(400, f"Invalid 'after': no file found with id '{after}'.", param="after")
                cursor = self._file_pos[after]
                indexes: range = range(cursor - 1, -1, -1) if order == "desc" else range(cursor + 1, newest)
            else:
                indexes = range(newest - 1, -1, -1) if order == "desc" else range(newest)
            page: list[FileEntry] = []
            has_more = False
            for i in indexes:
                entry = entries[i]
                if i >= newest or not entry.visible(t):
                    continue
                if purpose is not None and entry.purpose != purpose:
                    continue
                if len(page) == limit:
                    has_more = True
                    break
                page.append(entry)
            data = [self._file_dict(e) for e in page]
            return _list_page(data, has_more)

    # --- batches ------------------------------------------------------------------------------

    def create_batch(self, params: Any) -> dict[str, Any]:
        if not isinstance(params, dict):
            raise invalid_type("body", "an object", params)
        for key in params:
            if key not in CREATE_BATCH_FIELDS:
                raise ApiError(400, f"Unrecognized request argument supplied: {key}")
        for key in ("input_file_id", "endpoint", "completion_window"):
            if key not in params or params[key] is None:
                raise missing_parameter(key)
            if not isinstance(params[key], str):
                raise invalid_type(key, "a string", params[key])
        endpoint = params["endpoint"]
        if endpoint not in c.ENDPOINTS:
            raise invalid_value("endpoint", endpoint, c.ENDPOINTS)
        if params["completion_window"] != "24h":
            raise invalid_value("completion_window", params["completion_window"], ("24h",))
        metadata = _check_metadata(params.get("metadata"))
        ttl = FILE_TTL
        if params.get("output_expires_after") is not None:
            ttl = _expiry_seconds(params["output_expires_after"], "output_expires_after")
        file_id = params["input_file_id"]
        with self._lock:
            entry = self._files.get(file_id)
            if entry is None or not entry.visible(self.now()):
                raise ApiError(404, f"No such File object: {file_id}", param="input_file_id")
            if entry.purpose != "batch":
                raise ApiError(
                    400,
                    f"Invalid 'input_file_id': '{file_id}'. Expected a file with purpose "
                    f"'batch', but got '{entry.purpose}'.",
                    param="input_file_id",
                    code="invalid_value",
                )
        # Reading and checking up to 200 MB happens outside the lock; the file cannot change.
        checked = c.validate_input(entry.read_all(), endpoint)
        with self._lock:
            op = {
                "op": "batch",
                "at": self.now(),
                "endpoint": endpoint,
                "input_file_id": file_id,
                "metadata": metadata,
                "output_ttl": ttl,
            }
            batch = self._apply(op, checked=checked)
            return self._batch_dict(batch, self.now())

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            return self._batch_dict(self._batch(batch_id), self.now())

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self._batch(batch_id)
            t = self.now()
            status = batch.snap(t).status
            if status in ("validating", "in_progress"):
                seconds = self._cancel_seconds(random.Random(f"{self.seed}:{batch.id}:cancel"))
                self._apply({"op": "cancel", "at": t, "id": batch.id, "seconds": seconds})
            elif status != "cancelling":
                raise ApiError(400, f"Cannot cancel a batch with status '{status}'.")
            return self._batch_dict(batch, t)

    def list_batches(self, *, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        if not 1 <= limit <= 100:
            raise integer_out_of_range("limit", limit, 1, 100)
        with self._lock:
            t = self.now()
            end = len(self._batches)
            if after is not None:
                batch = self._batch_by_id.get(after)
                if batch is None:
                    raise ApiError(400, f"Invalid 'after': no batch found with id '{after}'.", param="after")
                end = batch.seq
            start = max(0, end - limit)
            data = [self._batch_dict(self._batches[i], t) for i in range(end - 1, start - 1, -1)]
            return _list_page(data, start > 0)

    # --- simulator controls -------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Every batch, newest first, as the API would show it now.

        `now` is shown like the batches' times (on the wall clock with `wall_clock_timestamps`);
        `sim_now` is always the simulated clock, the one `advance` and `plan` speak.
        """
        with self._lock:
            t = self.now()
            return {
                "now": self.present(t),
                "sim_now": t,
                "speed": self.clock.speed,
                "wall_clock_timestamps": self.wall_clock_timestamps,
                "seed": self.seed,
                "batches": [self._batch_dict(b, t) for b in reversed(self._batches)],
            }

    def plan(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            return self._batch(batch_id).plan_dict()

    def batch_ids(self) -> list[str]:
        with self._lock:
            return [b.id for b in reversed(self._batches)]

    # --- persistence --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        target = Path(path) if path is not None else self.state_file
        if target is None:
            return
        with self._lock:
            document = self._dump()
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(document))
        os.replace(tmp, target)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        speed: float = 1.0,
        cancel_delay: tuple[int, int] | None = None,
        wall_clock_timestamps: bool = False,
    ) -> SimWorld:
        """A world saved by `save`, its clock resuming where it stopped.

        Its wall clock map (see `WallClockMap`) gains a piece where the clock resumes, shown at
        the wall time of this restart (at the simulated time itself for a frozen clock), so the
        time the simulator was down shows up as time passing, as it did.
        """
        document = json.loads(Path(path).read_text())
        if document.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: unsupported simulator state version")
        world = cls(
            seed=document["seed"],
            batches=document["seeded_batches"],
            speed=speed,
            start=document["origin"],
            cancel_delay=cancel_delay or (document["cancel_delay"][0], document["cancel_delay"][1]),
            wall_clock_timestamps=wall_clock_timestamps,
        )
        for op in document["log"]:
            if op["op"] == "upload":
                op = {**op, "data": base64.b64decode(op["data"])}
            world._apply(op)
        resumed = max(document["now"], world.origin)
        world.clock = SimClock(resumed, speed)
        if document.get("wall_clock"):
            world.wall_clock = WallClockMap([(p[0], p[1], p[2]) for p in document["wall_clock"]])
        world.wall_clock.resume(resumed, time.time() if speed > 0 else resumed, speed)
        world.state_file = Path(path)
        return world

    def _dump(self) -> dict[str, Any]:
        log = [
            {**op, "data": base64.b64encode(op["data"]).decode()} if op["op"] == "upload" else op
            for op in self._log
        ]
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "seeded_batches": self._seeded,
            "origin": self.origin,
            "now": self.clock.now(),
            "cancel_delay": list(self.cancel_delay),
            "wall_clock": self.wall_clock.to_list(),
            "log": log,
        }

    def _persist(self) -> None:
        if self.state_file is not None:
            self.save()

    def _apply(
        self,
        op: dict[str, Any],
        *,
        checked: tuple[list[c.ParsedRequest], list[dict[str, Any]]] | None = None,
    ) -> Any:
        """Make one change, at the simulated time it records, and log it."""
        kind = op["op"]
        result: Any
        if kind == "upload":
            self._uploads += 1
            ttl = op["ttl"]
            result = FileEntry(
                file_id=file_id_for(f"sim:{self.seed}:upload:{self._uploads}"),
                kind="upload",
                filename=op["filename"],
                purpose=op["purpose"],
                seq=self._next_seq(),
                created=op["at"],
                expires=op["at"] + ttl if ttl is not None else None,
                data=op["data"],
            )
            self._add_file(result)
        elif kind == "batch":
            if checked is None:
                data = self._files[op["input_file_id"]].read_all()
                checked = c.validate_input(data, op["endpoint"])
            self._api_batch_count += 1
            result = self._create_api_batch(self._api_batch_count, op, *checked)
        elif kind == "cancel":
            result = self._batch_by_id[op["id"]]
            result.cancel(op["at"], op["seconds"])
            self._file_order = None  # its result files now appear at another time
        elif kind == "delete":
            result = self._files[op["id"]]
            result.deleted = True
        else:
            raise ValueError(f"unknown operation {kind!r}")
        self._log.append(op)
        self._persist()
        return result

    # --- internals ----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _cancel_seconds(self, rng: random.Random) -> int:
        return rng.randint(*self.cancel_delay)

    def _batch(self, batch_id: str) -> Batch:
        batch = self._batch_by_id.get(batch_id)
        if batch is None:
            raise not_found_batch(batch_id)
        return batch

    def _visible_file(self, file_id: str, t: int) -> FileEntry:
        entry = self._files.get(file_id)
        if entry is None or not entry.visible(t):
            raise not_found_file(file_id)
        return entry

    def _add_file(self, entry: FileEntry) -> None:
        self._files[entry.id] = entry
        self._file_order = None

    def _add_batch(self, batch: Batch) -> None:
        batch.seq = len(self._batches)
        self._batches.append(batch)
        self._batch_by_id[batch.id] = batch
        for kind, file_id in (("output", batch.output_file_id), ("error", batch.error_file_id)):
            self._add_file(
                FileEntry(
                    file_id=file_id,
                    kind=kind,
                    filename=f"{batch.id}_{kind}.jsonl",
                    purpose="batch_output",
                    seq=self._next_seq(),
                    batch=batch,
                )
            )

    def _file_index(self) -> list[FileEntry]:
        """Every file that exists now or will exist, oldest first (rebuilt only after changes)."""
        if self._file_order is None:
            keyed: list[tuple[tuple[int, int], FileEntry]] = []
            for entry in self._files.values():
                created = entry.created_at()
                if created is not None:
                    keyed.append(((created, entry.seq), entry))
            keyed.sort(key=lambda item: item[0])
            self._file_order = [entry for _, entry in keyed]
            self._file_keys = [key for key, _ in keyed]
            self._file_pos = {entry.id: i for i, (_, entry) in enumerate(keyed)}
        return self._file_order

    def _create_api_batch(
        self,
        counter: int,
        record: Mapping[str, Any],
        requests: list[c.ParsedRequest],
        errors: list[dict[str, Any]],
    ) -> Batch:
        endpoint = record["endpoint"]
        batch_id = batch_id_for(f"sim:{self.seed}:api-batch:{counter}")
        rng = random.Random(f"sim:{self.seed}:api-plan:{counter}")
        # Validation takes longer for bigger files; throughput differs from batch to batch, and
        # a big, slow batch really can run past its 24 h window.
        validate_s = rng.randint(10, 60) + len(requests) // 1_000
        rate = 10 ** rng.uniform(-0.5, 1.3)
        # Even a tiny batch takes minutes: requests wait for capacity before they run.
        run_s = max(rng.randint(120, 900), int(len(requests) / rate * rng.uniform(0.8, 1.25)))
        finalize_s = int(10 + len(requests) / rng.uniform(80, 400) + rng.uniform(0, 60))
        plan = Plan(
            validate_s=validate_s,
            run_s=run_s,
            finalize_s=finalize_s,
            errors=tuple(errors) if errors else None,
        )
        source = (
            c.UploadedRequests(
                endpoint,
                requests,
                batch_id=batch_id,
                fail_level=_weighted(rng, _FAIL_LEVELS),
                phase=rng.randrange(c.PERIOD),
            )
            if requests
            else None
        )
        batch = Batch(
            batch_id=batch_id,
            created_at=record["at"],
            endpoint=endpoint,
            input_file_id=record["input_file_id"],
            metadata=record["metadata"],
            plan=plan,
            requests=source,
            output_file_id=file_id_for(f"{batch_id}:output"),
            error_file_id=file_id_for(f"{batch_id}:error"),
            output_ttl=record["output_ttl"],
            progress_key=f"{self.seed}:{batch_id}:progress",
        )
        self._add_batch(batch)
        return batch

    def _seed(self, count: int) -> None:
        rng = random.Random(f"batch-simulator:{self.seed}")
        seeded = [self._seed_one(j, rng) for j in range(count)]
        # Listing order is creation order; the generation index breaks ties.
        seeded.sort(key=lambda item: (item[0].created_at, item[1]))
        for batch, _, entry in seeded:
            entry.seq = self._next_seq()
            self._add_file(entry)
            self._add_batch(batch)

    def _seed_one(self, j: int, rng: random.Random) -> tuple[Batch, int, FileEntry]:
        t0 = self.origin
        kind = STATUSES[j] if j < len(STATUSES) else _weighted(rng, _KIND_WEIGHTS)
        endpoint, model = rng.choices(
            [(e, m) for e, m, _ in _SEED_MODELS], weights=[w for _, _, w in _SEED_MODELS]
        )[0]
        total = 50_000 if rng.random() < 0.03 else int(10 ** rng.uniform(0.7, 4.4))
        validate_s = int(10 ** rng.uniform(0.8, 2.6))
        rate = 10 ** rng.uniform(-0.3, 1.3)
        run_s = int(min(20 * 3600, max(120, total / rate)))
        finalize_s = int(min(3600, 10 + total / rng.uniform(80, 400) + rng.uniform(0, 90)))
        back = rng.randint(120, SEED_SPREAD)  # how long ago a terminal batch finished
        cancel: tuple[int, int] | None = None  # (seconds after creation, cancelling seconds)
        invalid: tuple[str, tuple[int, ...]] | None = None
        errors: list[dict[str, Any]] | None = None

        if kind == "completed":
            created = t0 - validate_s - run_s - finalize_s - back
        elif kind == "failed":
            scenario = _weighted(rng, _SCENARIO_WEIGHTS)
            lines, errors = c.seeded_validation_failure(scenario, total, model, rng)
            invalid = (scenario, lines) if lines else None
            created = t0 - validate_s - back
        elif kind == "expired":
            run_s = int((DAY - validate_s) * rng.uniform(1.15, 3.0))
            created = t0 - DAY - rng.randint(120, SEED_SPREAD - DAY)
        elif kind in ("cancelled", "cancelling"):
            seconds = self._cancel_seconds(rng)
            if rng.random() < 0.15:
                offset = rng.randint(0, validate_s - 1)  # cancelled while validating
            else:
                offset = validate_s + rng.randint(1, max(1, run_s - 1))
            cancel = (offset, seconds)
            if kind == "cancelled":
                created = t0 - offset - seconds - back
            else:
                created = t0 - offset - rng.randint(0, seconds - 1)
        elif kind == "in_progress":
            roll = rng.random()
            if roll < 0.7:  # live: short enough to watch move at speed 30-60
                run_s = rng.randint(1200, 6 * 3600)
                elapsed = rng.randint(int(run_s * 0.02), int(run_s * 0.95))
            elif roll < 0.8:  # doomed: too slow to finish inside the 24 h window
                window = DAY - validate_s
                run_s = int(window * rng.uniform(1.1, 2.0))
                elapsed = rng.randint(int(window * 0.3), int(window * 0.97))
            else:
                elapsed = rng.randint(0, run_s - 1)
            created = t0 - validate_s - elapsed
        elif kind == "validating":
            validate_s = rng.randint(60, 900)
            created = t0 - rng.randint(0, validate_s - 1)
        elif kind == "finalizing":
            finalize_s = rng.randint(120, 1800)
            run_s = rng.randint(600, 4 * 3600)
            created = t0 - validate_s - run_s - rng.randint(0, finalize_s - 1)
        else:
            raise AssertionError(kind)

        prefixes = _CID_PREFIXES[endpoint]
        key = c.ProfileKey(
            endpoint=endpoint,
            model=model,
            cid_prefix=prefixes[rng.randrange(len(prefixes))],
            fail_level=_weighted(rng, _FAIL_LEVELS),
            long_system=endpoint in ("/v1/chat/completions", "/v1/responses")
            and total <= 10_000
            and rng.random() < 0.3,
        )
        metadata: dict[str, str] | None = None
        project = _PROJECTS[rng.randrange(len(_PROJECTS))]
        day = time.strftime("%Y-%m-%d", time.gmtime(created))
        if rng.random() < 0.85:
            metadata = {
                "project": project,
                "owner": _OWNERS[rng.randrange(len(_OWNERS))],
                "run": f"{_RUNS[rng.randrange(len(_RUNS))]}-{day}",
            }
            if rng.random() < 0.3:
                metadata["env"] = "prod" if rng.random() < 0.7 else "staging"
        batch_id = batch_id_for(f"sim:{self.seed}:batch:{j}")
        input_id = file_id_for(f"sim:{self.seed}:input:{j}")
        requests = c.SeededRequests(
            key, total=total, phase=rng.randrange(c.PERIOD), batch_id=batch_id, invalid=invalid
        )
        batch = Batch(
            batch_id=batch_id,
            created_at=created,
            endpoint=endpoint,
            input_file_id=input_id,
            metadata=metadata,
            plan=Plan(
                validate_s=validate_s,
                run_s=run_s,
                finalize_s=finalize_s,
                errors=tuple(errors) if errors is not None else None,
            ),
            requests=requests,
            output_file_id=file_id_for(f"sim:{self.seed}:output:{j}"),
            error_file_id=file_id_for(f"sim:{self.seed}:error:{j}"),
            progress_key=f"{self.seed}:{batch_id}:progress",
        )
        if cancel is not None:
            batch.cancel(created + cancel[0], cancel[1])
        uploaded = created - rng.randint(3, 600)
        entry = FileEntry(
            file_id=input_id,
            kind="input",
            filename=f"{project}-{day}-{j:05d}.jsonl",
            purpose="batch",
            seq=0,
            created=uploaded,
            expires=uploaded + FILE_TTL,
            batch=batch,
        )
        return batch, j, entry


def _list_page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def _check_metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_type("metadata", "an object", value)
    if len(value) > 16:
        raise ApiError(
            400,
            "Invalid 'metadata': too many properties. Expected an object with at most 16 "
            f"properties, but got an object with {len(value)} properties instead.",
            param="metadata",
            code="object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > 64:
            raise ApiError(
                400,
                "Invalid 'metadata': string too long. Expected a string with maximum length 64, "
                f"but got a string with length {len(key)} instead.",
                param="metadata",
                code="string_above_max_length",
            )
        if not isinstance(item, str):
            raise invalid_type(f"metadata.{key}", "a string", item)
        if len(item) > 512:
            raise ApiError(
                400,
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum "
                f"length 512, but got a string with length {len(item)} instead.",
                param=f"metadata.{key}",
                code="string_above_max_length",
            )
    return dict(value)


def _expiry_seconds(value: Any, param: str) -> int:
    if not isinstance(value, Mapping):
        raise invalid_type(param, "an object", value)
    for key in value:
        if key not in ("anchor", "seconds"):
            raise ApiError(400, f"Unrecognized request argument supplied: {param}.{key}")
    if "anchor" not in value:
        raise missing_parameter(f"{param}.anchor")
    if "seconds" not in value:
        raise missing_parameter(f"{param}.seconds")
    if value["anchor"] != "created_at":
        raise invalid_value(f"{param}.anchor", value["anchor"], ("created_at",))
    seconds = value["seconds"]
    if isinstance(seconds, str) and seconds.strip().lstrip("-").isdigit():
        seconds = int(seconds)  # multipart form fields arrive as text
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise invalid_type(f"{param}.seconds", "an integer", seconds)
    if not 3600 <= seconds <= 2_592_000:
        raise integer_out_of_range(f"{param}.seconds", seconds, 3600, 2_592_000)
    return seconds
