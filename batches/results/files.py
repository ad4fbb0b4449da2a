"""The files of a batch: their facts, a page of a file's lines, and a file's bytes as a download.

Files are only ever streamed, line by line, so a 200 MB result file costs the dashboard a few chunks
of memory, never the whole file. Every failure comes back as a plain-words message.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import datetime

from batches.api.client import BatchAPIClient
from batches.api.errors import APIError, NotFoundError, describe
from batches.api.objects import FileObject
from batches.connections import ConnectionNotConfigured, client_for
from batches.models import Batch, Connection
from batches.results.summaries import PreviewLine, parse_line

logger = logging.getLogger(__name__)

FILE_KINDS = ("input", "output", "error")
GONE_MESSAGE = "Results no longer available: the file has expired or was deleted at the API."
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25


class ResultsUnavailable(Exception):
    """The file has expired or vanished at the API (404)."""

    def __init__(self, message: str = GONE_MESSAGE) -> None:
        super().__init__(message)
        self.message = message


class ResultsError(Exception):
    """The API could not be asked, or refused; the message is meant for the page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def open_client(connection: Connection) -> BatchAPIClient:
    """A client for the connection; a connection that cannot be used is a ResultsError."""
    try:
        return client_for(connection)
    except ConnectionNotConfigured as error:
        raise ResultsError(str(error)) from None


def file_id_of(batch: Batch, kind: str) -> str:
    """The batch's file of that kind, or "" if it has none (yet)."""
    if kind not in FILE_KINDS:
        return ""
    return getattr(batch, f"{kind}_file_id") or ""


def shown_kinds(batch: Batch) -> tuple[str, ...]:
    # Result files appear only once a batch is terminal; the input file is there from the start.
    return FILE_KINDS if batch.is_terminal else ("input",)


# --------------------------------------------------------------------------- file facts


@dataclass(frozen=True)
class FileInfo:
    kind: str
    file_id: str
    bytes: int | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    filename: str | None = None
    gone: bool = False
    problem: str = ""

    @property
    def available(self) -> bool:
        return not self.gone and not self.problem

    @classmethod
    def of(cls, kind: str, file: FileObject) -> FileInfo:
        return cls(
            kind=kind,
            file_id=file.id,
            bytes=file.bytes,
            created_at=file.created_at,
            expires_at=file.expires_at,
            filename=file.filename,
        )


def _retrieve(client: BatchAPIClient, kind: str, file_id: str) -> FileInfo:
    try:
        return FileInfo.of(kind, client.retrieve_file(file_id))
    except NotFoundError:
        return FileInfo(kind, file_id, gone=True)


def batch_files(batch: Batch) -> list[FileInfo]:
    """The facts of each file the batch has, in input, output, error order."""
    wanted = [(kind, file_id_of(batch, kind)) for kind in shown_kinds(batch)]
    wanted = [(kind, file_id) for kind, file_id in wanted if file_id]
    if not wanted:
        return []
    try:
        client = open_client(batch.connection)
    except ResultsError as error:
        return [FileInfo(kind, file_id, problem=error.message) for kind, file_id in wanted]
    infos: list[FileInfo] = []
    with client:
        for kind, file_id in wanted:
            if infos and infos[-1].problem:
                # The API just failed for the previous file; asking again would only wait again.
                infos.append(FileInfo(kind, file_id, problem=infos[-1].problem))
                continue
            try:
                infos.append(_retrieve(client, kind, file_id))
            except APIError as error:
                infos.append(FileInfo(kind, file_id, problem=describe(error)))
    return infos


# --------------------------------------------------------------------------- preview


@dataclass(frozen=True)
class PreviewPage:
    kind: str
    file_id: str
    page: int
    per_page: int
    lines: list[PreviewLine]
    has_next: bool
    # Known once the stream reached the end of the file.
    line_count: int | None = None

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def last_page(self) -> int | None:
        if self.line_count is None:
            return None
        return max(1, math.ceil(self.line_count / self.per_page))

    @property
    def past_the_end(self) -> bool:
        return not self.lines and self.line_count is not None and self.page > 1


def page_of_lines(
    lines: Iterable[bytes], kind: str, page: int, per_page: int
) -> tuple[list[PreviewLine], bool, int | None]:
    """Skip to page `page` while streaming; stop reading as soon as the page (and one line more, to
    know there is a next page) has been seen."""
    skip = (page - 1) * per_page
    shown: list[PreviewLine] = []
    count = 0
    for raw in lines:
        count += 1
        if count <= skip:
            continue  # skipped lines are never parsed
        if len(shown) == per_page:
            return shown, True, None
        shown.append(parse_line(kind, count, raw))
    return shown, False, count


def preview(batch: Batch, kind: str, page: int, per_page: int) -> tuple[PreviewPage, FileInfo | None]:
    """A page of the file's lines (and the file's facts, unless the file is already gone).

    Raises ResultsUnavailable for an expired or deleted file, ResultsError if the API fails.
    """
    file_id = file_id_of(batch, kind)
    if not file_id:
        raise ResultsUnavailable(f"This batch has no {kind} file.")
    with open_client(batch.connection) as client:
        try:
            info = FileInfo.of(kind, client.retrieve_file(file_id))
            with closing(client.iter_file_lines(file_id)) as lines:
                shown, has_next, count = page_of_lines(lines, kind, page, per_page)
        except NotFoundError:
            raise ResultsUnavailable() from None
        except APIError as error:
            raise ResultsError(describe(error)) from None
    return PreviewPage(kind, file_id, page, per_page, shown, has_next, count), info


# --------------------------------------------------------------------------- download


class FileDownload:
    """A file's bytes as an iterable of chunks; the API connection is released by close(), which
    Django calls when the response is done, even if no chunk was ever read."""

    def __init__(self, batch: Batch, kind: str) -> None:
        file_id = file_id_of(batch, kind)
        if not file_id:
            raise ResultsUnavailable(f"This batch has no {kind} file.")
        # The id comes from the API: keep it to characters that cannot break the header.
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", batch.batch_id)[:120] or "batch"
        self.filename = f"{safe_id}_{kind}.jsonl"
        self.size: int | None = None
        self._stack = ExitStack()
        try:
            client = self._stack.enter_context(open_client(batch.connection))
            self.size = client.retrieve_file(file_id).bytes
            self._chunks = self._stack.enter_context(client.stream_file_content(file_id))
        except NotFoundError:
            self._stack.close()
            raise ResultsUnavailable() from None
        except APIError as error:
            self._stack.close()
            raise ResultsError(describe(error)) from None
        except BaseException:
            self._stack.close()
            raise
        self._file_id = file_id

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        except APIError as error:
            # The status line has gone out already; all we can do is cut the download short, which
            # the browser reports because fewer bytes than Content-Length arrived.
            logger.warning("download of %s broke off: %s", self._file_id, error)
            raise
        finally:
            self.close()

    def close(self) -> None:
        self._stack.close()
