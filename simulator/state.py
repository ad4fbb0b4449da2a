"""The simulated world behind the fake Batch and Files APIs: `SimWorld`, what the endpoints do.

Pure Python and independent of Django and HTTP, so it can be driven directly in tests. Every public
method of `SimWorld` takes its one lock, which makes the world safe to share between the threads of
the HTTP server. Every change made through the API is logged; replaying the log rebuilds the world,
which is what the state file holds.

The world's parts: `clock` (simulated time, and where it shows on the wall clock), `lifecycle` (a
batch's plan and its status at any time), `files` (files rendered on demand), `seeding` (the
batches a world starts with, the plans of created ones), `sources` (their requests and result
lines), `validation` (input file checks), `errors` (the API's errors and parameter checks).
"""

from __future__ import annotations

import base64
import bisect
import json
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from simulator.clock import SimClock, WallClockMap
from simulator.content import ENDPOINTS
from simulator.errors import (
    ApiError,
    check_metadata,
    expiry_seconds,
    integer_out_of_range,
    invalid_type,
    invalid_value,
    missing_parameter,
    not_found_batch,
    not_found_file,
)
from simulator.files import FILE_TIME_FIELDS, FileEntry
from simulator.lifecycle import BATCH_TIME_FIELDS, FAR_FUTURE, FILE_TTL, SimBatch
from simulator.seeding import api_batch, file_id_for, seeded_batch
from simulator.validation import ParsedRequest, validate_input

STATE_VERSION = 1
UPLOAD_PURPOSES: tuple[str, ...] = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
CREATE_BATCH_FIELDS = frozenset(
    {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}
)
MAX_UPLOAD_BYTES = 512 * 1024 * 1024


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
        self._batches: list[SimBatch] = []  # oldest first; lists are served from the end
        self._batch_by_id: dict[str, SimBatch] = {}
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

    def _batch_dict(self, batch: SimBatch, t: int) -> dict[str, Any]:
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
            ttl = expiry_seconds(expires_after, "expires_after")
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
        if endpoint not in ENDPOINTS:
            raise invalid_value("endpoint", endpoint, ENDPOINTS)
        if params["completion_window"] != "24h":
            raise invalid_value("completion_window", params["completion_window"], ("24h",))
        metadata = check_metadata(params.get("metadata"))
        ttl = FILE_TTL
        if params.get("output_expires_after") is not None:
            ttl = expiry_seconds(params["output_expires_after"], "output_expires_after")
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
        checked = validate_input(entry.read_all(), endpoint)
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

    def finished_between(self, after: int, until: int) -> list[tuple[str, str, int]]:
        """(id, final status, when as the API shows it) of each batch whose life ended in the
        simulated interval (after, until]: what the webhooks (simulator/webhooks.py) announce."""
        with self._lock:
            ended = []
            for batch in self._batches:
                final = batch.final()
                at = final.terminal_at
                if at is not None and after < at <= until:
                    ended.append((batch.id, final.status, self.present(at)))
            return ended

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
        checked: tuple[list[ParsedRequest], list[dict[str, Any]]] | None = None,
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
                checked = validate_input(data, op["endpoint"])
            self._api_batch_count += 1
            result = api_batch(self.seed, self._api_batch_count, op, *checked)
            self._add_batch(result)
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

    def _batch(self, batch_id: str) -> SimBatch:
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

    def _add_batch(self, batch: SimBatch) -> None:
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

    def _seed(self, count: int) -> None:
        rng = random.Random(f"batch-simulator:{self.seed}")
        seeded = [
            seeded_batch(j, rng, seed=self.seed, origin=self.origin, cancel_delay=self.cancel_delay)
            for j in range(count)
        ]
        # Listing order is creation order; the generation index breaks ties.
        seeded.sort(key=lambda item: (item[0].created_at, item[1]))
        for batch, _, entry in seeded:
            entry.seq = self._next_seq()
            self._add_file(entry)
            self._add_batch(batch)


def _list_page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
