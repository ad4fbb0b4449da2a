"""The simulated files: uploaded bytes, seeded input files and batch results rendered on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from simulator.lifecycle import SimBatch
from simulator.sources import SeededRequests

FILE_TIME_FIELDS = ("created_at", "expires_at")


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
        batch: SimBatch | None = None,
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
            assert isinstance(batch.requests, SeededRequests)
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
            assert isinstance(batch.requests, SeededRequests)
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
