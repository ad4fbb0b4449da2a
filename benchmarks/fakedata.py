"""A realistic batch table, written fast: the benchmarks' connections and batches (statuses, endpoints,
models, metadata and timings spread as the simulator spreads them), with bulk_create in chunks, as the
sync would have written them. Not a benchmark itself (run_all.py only runs bench_*.py)."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

# The simulator's spread (simulator/README.md): about 46 % completed, 18 % in_progress, ...
STATUS_WEIGHTS = (
    ("completed", 46),
    ("in_progress", 18),
    ("failed", 8),
    ("cancelled", 7),
    ("finalizing", 6),
    ("validating", 5),
    ("expired", 5),
    ("cancelling", 5),
)
ENDPOINTS = (
    ("/v1/chat/completions", 50),
    ("/v1/responses", 20),
    ("/v1/embeddings", 20),
    ("/v1/completions", 5),
    ("/v1/moderations", 5),
)
CHAT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini", "o4-mini")
EMBEDDING_MODELS = ("text-embedding-3-small", "text-embedding-3-large")
PROJECTS = tuple(
    f"project-{name}" for name in ("alpha", "beta", "gamma", "delta", "evals", "search", "ranking")
)
OWNERS = ("ana", "ben", "chen", "dara", "eli", "fay", "gus", "hana", "ivan", "jo", "kai", "lea", "mo", "nia")
# Connections and their share of the batches.
CONNECTIONS = (("prod-eu", 50), ("prod-us", 30), ("research", 20))


def _weighted(rng: random.Random, table: Sequence[tuple[Any, int]]) -> Any:
    return rng.choices([value for value, _ in table], weights=[weight for _, weight in table])[0]


def _unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def make_connections(now: datetime) -> list:
    """The benchmark's connections (and the environment one, which a migration creates, disabled)."""
    from batches.models import Connection

    Connection.objects.filter(from_environment=True).update(enabled=False)
    connections = []
    for name, _ in CONNECTIONS:
        connection, _ = Connection.objects.update_or_create(
            name=name,
            defaults={
                "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "BENCH_UNUSED_API_KEY",
                "enabled": True,
                "last_success_at": now - timedelta(seconds=5),
                "last_complete_walk_at": now - timedelta(minutes=2),
                "next_refresh_at": now + timedelta(seconds=10),
                "next_full_sync_at": now + timedelta(minutes=3),
            },
        )
        connections.append(connection)
    return connections


def _batch(rng: random.Random, number: int, connection, now: datetime):
    """One batch as the sync would have stored it, with an API-shaped raw JSON."""
    from batches.models import Batch
    from batches.statuses import TERMINAL_STATUSES

    status = _weighted(rng, STATUS_WEIGHTS)
    endpoint = _weighted(rng, ENDPOINTS)
    model = rng.choice(EMBEDDING_MODELS if endpoint == "/v1/embeddings" else CHAT_MODELS)
    terminal = status in TERMINAL_STATUSES
    # Active batches are from the last day; finished ones spread over the last 30 days.
    age = timedelta(seconds=rng.uniform(60, 86_000 if not terminal else 30 * 86_400))
    created = now - age
    total = 0 if status == "validating" else int(math.exp(rng.uniform(math.log(5), math.log(50_000))))
    completed = failed = 0
    in_progress_at = finalizing_at = completed_at = failed_at = expired_at = cancelling_at = cancelled_at = (
        None
    )
    run_start = created + timedelta(seconds=rng.uniform(5, 600))
    if status == "failed":
        total, failed_at = 0, run_start
    elif status != "validating":
        in_progress_at = run_start
        if status in ("completed", "finalizing"):
            failed = int(total * rng.uniform(0, 0.02))
            completed = total - failed
        else:
            done = int(total * rng.uniform(0.02, 0.98))
            failed = int(done * rng.uniform(0, 0.03))
            completed = done - failed
        span = max((now - run_start).total_seconds(), 1)
        end = run_start + timedelta(seconds=span * rng.uniform(0.2, 0.95))
        if status == "completed":
            finalizing_at, completed_at = end, end + timedelta(seconds=rng.uniform(5, 300))
        elif status == "finalizing":
            finalizing_at = end
        elif status == "expired":
            expired_at = created + timedelta(hours=24) if now - created > timedelta(hours=24) else end
        elif status == "cancelling":
            cancelling_at = end
        elif status == "cancelled":
            cancelling_at, cancelled_at = end, end + timedelta(seconds=rng.uniform(5, 600))
    metadata = None
    if rng.random() < 0.85:
        metadata = {
            "project": rng.choice(PROJECTS),
            "owner": rng.choice(OWNERS),
            "run": f"run-{number % 997}",
        }
    batch_id = f"batch_{number:08x}{rng.getrandbits(64):016x}"
    input_file = f"file-in{rng.getrandbits(48):012x}"
    output_file = f"file-out{rng.getrandbits(48):012x}" if completed else ""
    error_file = f"file-err{rng.getrandbits(48):012x}" if failed else ""
    errors = (
        [{"code": "invalid_request", "line": 1, "message": "Model not found", "param": "body.model"}]
        if status == "failed"
        else []
    )
    done = completed + failed
    tokens: dict[str, Any] | None = None
    if done:
        input_tokens = done * rng.randint(50, 900)
        output_tokens = 0 if endpoint == "/v1/embeddings" else done * rng.randint(20, 400)
        tokens = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": input_tokens // 10},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }
    synced = now - timedelta(seconds=rng.uniform(1, 15) if not terminal else rng.uniform(60, 3600))
    last_progress = None
    rate = eta = None
    if status == "in_progress" and done:
        last_progress = now - timedelta(seconds=rng.uniform(1, 120))
        minutes = max((last_progress - run_start).total_seconds() / 60, 0.1)
        rate = done / minutes
        eta = now + timedelta(minutes=(total - done) / rate) if rate else None
    expires = created + timedelta(hours=24)
    raw = {
        "id": batch_id,
        "object": "batch",
        "endpoint": endpoint,
        "model": model,
        "errors": {"object": "list", "data": errors} if errors else None,
        "input_file_id": input_file,
        "completion_window": "24h",
        "status": status,
        "output_file_id": output_file or None,
        "error_file_id": error_file or None,
        "created_at": _unix(created),
        "in_progress_at": _unix(in_progress_at),
        "expires_at": _unix(expires),
        "finalizing_at": _unix(finalizing_at),
        "completed_at": _unix(completed_at),
        "failed_at": _unix(failed_at),
        "expired_at": _unix(expired_at),
        "cancelling_at": _unix(cancelling_at),
        "cancelled_at": _unix(cancelled_at),
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "usage": tokens,
        "metadata": metadata,
    }
    return Batch(
        connection=connection,
        batch_id=batch_id,
        status=status,
        is_terminal=terminal,
        endpoint=endpoint,
        model=model,
        completion_window="24h",
        input_file_id=input_file,
        output_file_id=output_file,
        error_file_id=error_file,
        created_at=created,
        in_progress_at=in_progress_at,
        expires_at=expires,
        finalizing_at=finalizing_at,
        completed_at=completed_at,
        failed_at=failed_at,
        expired_at=expired_at,
        cancelling_at=cancelling_at,
        cancelled_at=cancelled_at,
        total_requests=total,
        completed_requests=completed,
        failed_requests=failed,
        input_tokens=tokens["input_tokens"] if tokens else None,
        cached_tokens=tokens["input_tokens_details"]["cached_tokens"] if tokens else None,
        output_tokens=tokens["output_tokens"] if tokens else None,
        reasoning_tokens=0 if tokens else None,
        total_tokens=tokens["total_tokens"] if tokens else None,
        done_ratio=done / total if total else 0.0,
        last_progress_at=last_progress,
        rate_per_minute=rate,
        eta_at=eta,
        metadata=metadata,
        errors=errors,
        problems=[],
        raw=raw,
        observed_at=synced,
        first_seen_at=created + timedelta(seconds=rng.uniform(1, 30)),
        last_synced_at=synced,
        last_changed_at=synced - timedelta(seconds=rng.uniform(0, 600)),
        listed=True,
    )


def fill_batches(count: int, *, seed: int = 1, chunk: int = 5_000, progress: bool = False) -> dict[str, Any]:
    """`count` batches over the benchmark's connections, written with bulk_create in chunks of
    `chunk` rows (one transaction each). Returns how long it took and what was written."""
    from django.db import transaction

    from batches.models import Batch

    rng = random.Random(seed)
    now = datetime.now(UTC)
    connections = make_connections(now)
    weights = [weight for _, weight in CONNECTIONS]
    started = time.perf_counter()
    written = 0
    while written < count:
        size = min(chunk, count - written)
        rows = [
            _batch(rng, written + index, rng.choices(connections, weights=weights)[0], now)
            for index in range(size)
        ]
        with transaction.atomic():
            Batch.objects.bulk_create(rows, batch_size=chunk)
        written += size
        if progress and (written % 20_000 == 0 or written == count):
            print(f"  {written:,} batches written ({time.perf_counter() - started:.1f} s)", flush=True)
    seconds = time.perf_counter() - started
    return {"batches": count, "connections": len(connections), "seconds": seconds, "seed": seed}
