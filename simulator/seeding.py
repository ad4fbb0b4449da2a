"""Where batches come from: the seeded history a world starts with, and the plan of a created one.

Everything random about a batch (its id, plan, requests, metadata) is drawn here from generators
seeded by the world's seed and the batch's place, so the same seed always makes the same world.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

from simulator.files import FileEntry
from simulator.lifecycle import DAY, FILE_TTL, STATUSES, Plan, SimBatch
from simulator.sources import PERIOD, ProfileKey, SeededRequests, UploadedRequests
from simulator.templates import base62_digest, hex_digest
from simulator.validation import ParsedRequest, seeded_validation_failure

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
    return "batch_" + hex_digest(key, 32)


def file_id_for(key: str) -> str:
    return "file-" + base62_digest(key, 22)


def api_batch(
    seed: int,
    counter: int,
    record: Mapping[str, Any],
    requests: list[ParsedRequest],
    errors: list[dict[str, Any]],
) -> SimBatch:
    endpoint = record["endpoint"]
    batch_id = batch_id_for(f"sim:{seed}:api-batch:{counter}")
    rng = random.Random(f"sim:{seed}:api-plan:{counter}")
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
        UploadedRequests(
            endpoint,
            requests,
            batch_id=batch_id,
            fail_level=_weighted(rng, _FAIL_LEVELS),
            phase=rng.randrange(PERIOD),
        )
        if requests
        else None
    )
    batch = SimBatch(
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
        progress_key=f"{seed}:{batch_id}:progress",
    )
    return batch


def seeded_batch(
    j: int, rng: random.Random, *, seed: int, origin: int, cancel_delay: tuple[int, int]
) -> tuple[SimBatch, int, FileEntry]:
    t0 = origin
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
        lines, errors = seeded_validation_failure(scenario, total, model, rng)
        invalid = (scenario, lines) if lines else None
        created = t0 - validate_s - back
    elif kind == "expired":
        run_s = int((DAY - validate_s) * rng.uniform(1.15, 3.0))
        created = t0 - DAY - rng.randint(120, SEED_SPREAD - DAY)
    elif kind in ("cancelled", "cancelling"):
        seconds = rng.randint(*cancel_delay)
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
    key = ProfileKey(
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
    batch_id = batch_id_for(f"sim:{seed}:batch:{j}")
    input_id = file_id_for(f"sim:{seed}:input:{j}")
    requests = SeededRequests(
        key, total=total, phase=rng.randrange(PERIOD), batch_id=batch_id, invalid=invalid
    )
    batch = SimBatch(
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
        output_file_id=file_id_for(f"sim:{seed}:output:{j}"),
        error_file_id=file_id_for(f"sim:{seed}:error:{j}"),
        progress_key=f"{seed}:{batch_id}:progress",
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
