"""A batch's results, and new work made from them or from an upload.

Reads: the facts of a batch's input, output and error files; a page of a file's JSONL lines; failures
grouped by code and message. Writes: re-submitting the failed requests of a batch, and creating a
batch from an uploaded JSONL file. Files are only ever streamed, line by line, so a 200 MB result
file costs the dashboard a few chunks of memory, never the whole file. Every API call goes through
BatchAPIClient; every failure comes back as a plain-words message.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import IO, Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import timezone

from batches import sync
from batches.api_client import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BatchAPIClient,
    FileObject,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from batches.connections import ConnectionNotConfigured, client_for
from batches.models import Batch, Connection

logger = logging.getLogger(__name__)

FILE_KINDS = ("input", "output", "error")
GONE_MESSAGE = "Results no longer available: the file has expired or was deleted at the API."

# What the Batch API accepts (the contract's enum), and its limits on an input file.
BATCH_ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
COMPLETION_WINDOWS = ("24h",)
MAX_LINES = 50_000
MAX_BYTES = 200 * 1024 * 1024
MAX_EMBEDDING_INPUTS = 50_000
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
RETRY_OF_KEY = "retry_of"
CREATED_BY_KEY = "created_by"

PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
SUMMARY_CHARS = 160
MAX_EXAMPLES = 5
# Messages that embed numbers ("you requested 9317 tokens") can make every failure a group of its
# own; past this many groups, new messages are counted under their code only.
MAX_GROUPS = 50
OTHER_MESSAGES = "(other messages)"


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


def explain(error: APIError) -> str:
    """An API error in plain words; the client has already scrubbed the key from it."""
    if isinstance(error, RateLimitError):
        return "The API is rate limiting us. Try again in a minute."
    if isinstance(error, APITimeoutError | APIConnectionError):
        return "The API could not be reached. Try again."
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return f"The API refused this connection's key: {error.message}"
    return f"The API answered with an error: {error.message or error}"


def _client(connection: Connection) -> BatchAPIClient:
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
        client = _client(batch.connection)
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
                infos.append(FileInfo(kind, file_id, problem=explain(error)))
    return infos


# --------------------------------------------------------------------------- reading lines


def _clip(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text_of(value: Any, depth: int = 0) -> str:
    """The human text inside a message, a content part list or an input."""
    if isinstance(value, str):
        return value
    if depth >= 4:
        return ""
    if isinstance(value, dict):
        for key in ("content", "text"):
            if key in value:
                return _text_of(value[key], depth + 1)
        return ""
    if isinstance(value, list):
        return " ".join(text for text in (_text_of(item, depth + 1) for item in value[:20]) if text)
    return ""


def _prompt_of(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        # The system prompt is usually shared by every line; the last user turn tells them apart.
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        return _text_of((users or messages)[-1])
    for key in ("input", "prompt"):
        value = body.get(key)
        if isinstance(value, list) and len(value) > 1 and all(isinstance(v, str) for v in value):
            return f"{value[0]} (+{len(value) - 1} more)"
        if value is not None:
            return _text_of(value)
    return ""


def request_summary(body: Any) -> str:
    if not isinstance(body, dict):
        return "(no body)"
    parts = [str(body["model"])] if body.get("model") else []
    prompt = _prompt_of(body)
    if prompt:
        parts.append(prompt)
    return _clip(" · ".join(parts)) if parts else _clip(_compact(body))


def response_summary(body: Any) -> str:
    if not isinstance(body, dict):
        return _clip(_compact(body))
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        message = first.get("message")
        if isinstance(message, dict):
            text = _text_of(message.get("content"))
            if not text and message.get("refusal"):
                text = f"refused: {message['refusal']}"
            if not text and message.get("tool_calls"):
                text = f"{len(message['tool_calls'])} tool call(s)"
        else:
            text = _text_of(first.get("text"))
        finish = first.get("finish_reason")
        return _clip(text + (f" [{finish}]" if finish and finish != "stop" else ""))
    output = body.get("output")
    if isinstance(output, list):
        texts = [
            _text_of(item.get("content"))
            for item in output
            if isinstance(item, dict) and item.get("type") == "message"
        ]
        text = " ".join(t for t in texts if t)
        return _clip(text) if text else f"(no text; status {body.get('status', 'unknown')})"
    data = body.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        if "embedding" in data[0]:
            vector = data[0]["embedding"]
            size = f"{len(vector)} dimensions" if isinstance(vector, list) else "base64"
            return f"{len(data)} embedding(s), {size}"
        if "b64_json" in data[0] or "url" in data[0]:
            return f"{len(data)} image(s)"
    results = body.get("results")
    if isinstance(results, list) and results and isinstance(results[0], dict) and "flagged" in results[0]:
        flagged = [r for r in results if isinstance(r, dict) and r.get("flagged")]
        if not flagged:
            return "not flagged"
        categories = flagged[0].get("categories")
        names = sorted(k for k, v in categories.items() if v) if isinstance(categories, dict) else []
        return _clip("flagged: " + (", ".join(names) or "yes"))
    return _clip(_compact(body))


def failure_of(item: dict[str, Any]) -> tuple[str, str, int | None] | None:
    """(code, message, HTTP status) of a result line that failed, in either shape the API writes:
    `error` set with no response (expired, cancelled), or a response with status >= 400."""
    error = item.get("error")
    if isinstance(error, dict) and (error.get("code") or error.get("message")):
        return str(error.get("code") or "error"), str(error.get("message") or ""), None
    response = item.get("response")
    if not isinstance(response, dict):
        return None
    status = response.get("status_code")
    if not isinstance(status, int) or isinstance(status, bool) or status < 400:
        return None
    body = response.get("body")
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        # Some errors carry no code (context length on embeddings); their type still says something.
        code = detail.get("code") or detail.get("type") or f"http_{status}"
        return str(code), str(detail.get("message") or ""), status
    return f"http_{status}", _clip(_compact(body)), status


@dataclass(frozen=True)
class PreviewLine:
    number: int
    custom_id: str
    status_code: int | None
    summary: str
    failed: bool = False
    request: str = ""  # "POST /v1/..." for input lines


def parse_line(kind: str, number: int, raw: bytes) -> PreviewLine:
    try:
        item = json.loads(raw)
    except ValueError:
        item = None
    if not isinstance(item, dict):
        snippet = raw[:120].decode("utf-8", "replace")
        return PreviewLine(number, "", None, _clip(f"Not a JSON object: {snippet}"), failed=True)
    custom_id = item.get("custom_id")
    custom_id = custom_id if isinstance(custom_id, str) else ("" if custom_id is None else str(custom_id))
    if kind == "input":
        request = f"{item.get('method', '?')} {item.get('url', '?')}"
        return PreviewLine(number, custom_id, None, request_summary(item.get("body")), request=request)
    failure = failure_of(item)
    if failure is not None:
        code, message, status = failure
        return PreviewLine(number, custom_id, status, _clip(f"{code}: {message}"), failed=True)
    response = item.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    body = response.get("body") if isinstance(response, dict) else None
    return PreviewLine(number, custom_id, status if isinstance(status, int) else None, response_summary(body))


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
    with _client(batch.connection) as client:
        try:
            info = FileInfo.of(kind, client.retrieve_file(file_id))
            with closing(client.iter_file_lines(file_id)) as lines:
                shown, has_next, count = page_of_lines(lines, kind, page, per_page)
        except NotFoundError:
            raise ResultsUnavailable() from None
        except APIError as error:
            raise ResultsError(explain(error)) from None
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
            client = self._stack.enter_context(_client(batch.connection))
            self.size = client.retrieve_file(file_id).bytes
            self._chunks = self._stack.enter_context(client.stream_file_content(file_id))
        except NotFoundError:
            self._stack.close()
            raise ResultsUnavailable() from None
        except APIError as error:
            self._stack.close()
            raise ResultsError(explain(error)) from None
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


# --------------------------------------------------------------------------- error triage


@dataclass
class FailureGroup:
    code: str
    message: str
    count: int = 0
    examples: list[str] = field(default_factory=list)
    source: str = "requests"  # "validation" for the batch's own errors


@dataclass
class Triage:
    groups: list[FailureGroup]
    failures: int
    problem: str = ""
    merged: bool = False  # some messages were counted under their code only
    content_hidden: bool = False  # grouped by code alone, without messages or examples


class _Grouper:
    def __init__(self, with_content: bool = True) -> None:
        self.groups: dict[tuple[str, str, str], FailureGroup] = {}
        self.merged = False
        self.with_content = with_content

    def add(self, source: str, code: str, message: str, example: str) -> None:
        if not self.with_content:
            # Messages can quote the request, and examples are custom_ids: both are result content.
            message = example = ""
        key = (source, code, message)
        if key not in self.groups and len(self.groups) >= MAX_GROUPS:
            key = (source, code, OTHER_MESSAGES)
            self.merged = True
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = FailureGroup(code, key[2], source=source)
        group.count += 1
        if example and len(group.examples) < MAX_EXAMPLES:
            group.examples.append(example)


def triage(batch: Batch, *, with_content: bool = True) -> Triage:
    """Failures grouped by (code, message), biggest group first: the batch's own errors (a file that
    failed validation) and every failed line of its error file. Without `with_content`, for users who
    may not read results, they are grouped by code alone, with counts and no messages or examples."""
    grouper = _Grouper(with_content)
    for error in batch.errors or []:
        if not isinstance(error, dict):
            continue
        line = error.get("line")
        grouper.add(
            "validation",
            str(error.get("code") or "error"),
            str(error.get("message") or ""),
            f"line {line}" if line is not None else "",
        )
    problem = ""
    if batch.error_file_id:
        try:
            with (
                _client(batch.connection) as client,
                closing(client.iter_file_lines(batch.error_file_id)) as lines,
            ):
                for raw in lines:
                    try:
                        item = json.loads(raw)
                    except ValueError:
                        continue
                    failure = failure_of(item) if isinstance(item, dict) else None
                    if failure is not None:
                        custom_id = item.get("custom_id")
                        grouper.add("requests", failure[0], failure[1], str(custom_id or ""))
        except NotFoundError:
            problem = "The error file is no longer available, so its failures cannot be grouped."
        except APIError as error:
            problem = explain(error)
        except ResultsError as error:
            problem = error.message
    groups = sorted(grouper.groups.values(), key=lambda g: (-g.count, g.code, g.message))
    return Triage(groups, sum(g.count for g in groups), problem, grouper.merged, not with_content)


# --------------------------------------------------------------------------- retries


def retries_of(batch: Batch) -> list[Batch]:
    """Batches created to re-run this one's failures (they name it in metadata.retry_of)."""
    retries = Batch.objects.filter(connection_id=batch.connection_id, metadata__retry_of=batch.batch_id)
    if batch.created_at is not None:
        retries = retries.filter(created_at__gte=batch.created_at)  # narrows the scan on a big table
    return list(retries.order_by("created_at", "id"))


def original_of(batch: Batch) -> Batch | None:
    parent = (batch.metadata or {}).get(RETRY_OF_KEY) if isinstance(batch.metadata, dict) else None
    if not parent:
        return None
    return Batch.objects.filter(connection_id=batch.connection_id, batch_id=parent).first()


def estimated_retry_count(batch: Batch) -> int | None:
    """How many requests a re-submit would send, from the stored counts (None: unknown, e.g. a file
    that failed validation reports no counts)."""
    if not batch.total_requests:
        return None
    return max(batch.total_requests - batch.completed_requests, 0)


def can_resubmit(batch: Batch) -> bool:
    if not batch.is_terminal or not batch.input_file_id or not batch.endpoint:
        return False
    estimate = estimated_retry_count(batch)
    return estimate is None or estimate > 0


def retry_metadata(original: dict[str, Any] | None, batch_id: str) -> tuple[dict[str, str], list[str]]:
    """The original's metadata plus the link back; the API allows 16 keys, so if the original used
    them all its last keys give way (they are returned) rather than the link."""
    kept = [(str(k), str(v)) for k, v in (original or {}).items() if k != RETRY_OF_KEY]
    room = MAX_METADATA_KEYS - 1
    metadata = dict(kept[:room])
    metadata[RETRY_OF_KEY] = batch_id
    return metadata, [key for key, _ in kept[room:]]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    batch: Batch | None = None
    report: ValidationReport | None = None  # for an upload that failed validation

    @property
    def problems(self) -> list[LineProblem]:
        return self.report.problems if self.report is not None else []


def _custom_id(raw: bytes) -> str | None:
    try:
        item = json.loads(raw)
    except ValueError:
        return None
    value = item.get("custom_id") if isinstance(item, dict) else None
    return value if isinstance(value, str) and value else None


def _succeeded_ids(client: BatchAPIClient, output_file_id: str) -> set[str]:
    succeeded: set[str] = set()
    with closing(client.iter_file_lines(output_file_id)) as lines:
        for raw in lines:
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(item, dict) or failure_of(item) is not None:
                continue
            response = item.get("response")
            status = response.get("status_code") if isinstance(response, dict) else None
            if isinstance(status, int) and 200 <= status < 300 and isinstance(item.get("custom_id"), str):
                succeeded.add(item["custom_id"])
    return succeeded


def _store(connection: Connection, api_batch) -> Batch:
    """Mirror a batch we just created, so the list shows it without waiting for the next sync."""
    sync.upsert_batches(connection, [api_batch], observed_at=timezone.now())
    return Batch.objects.select_related("connection").get(connection=connection, batch_id=api_batch.id)


def resubmit_failed(batch: Batch) -> Outcome:
    """Re-run the requests of a terminal batch that did not succeed (failed, expired or cancelled
    before they ran): the input file's lines whose custom_id has no 2xx line in the output file."""
    if not can_resubmit(batch):
        return Outcome(False, "This batch has nothing to re-submit.")
    try:
        client = _client(batch.connection)
    except ResultsError as error:
        return Outcome(False, error.message)
    with client, tempfile.TemporaryFile() as retry_file:
        try:
            succeeded = _succeeded_ids(client, batch.output_file_id) if batch.output_file_id else set()
        except NotFoundError:
            return Outcome(
                False,
                "The output file is no longer available, so the dashboard cannot tell which requests "
                "succeeded; nothing was re-submitted.",
            )
        except APIError as error:
            return Outcome(False, f"{explain(error)} Nothing was re-submitted.")
        count = skipped = 0
        try:
            with closing(client.iter_file_lines(batch.input_file_id)) as lines:
                for raw in lines:
                    custom_id = _custom_id(raw)
                    if custom_id is None:
                        skipped += 1  # a line the API could not have run either
                    elif custom_id not in succeeded:
                        retry_file.write(raw + b"\n")
                        count += 1
        except NotFoundError:
            return Outcome(False, "The input file is no longer available; nothing was re-submitted.")
        except APIError as error:
            return Outcome(False, f"{explain(error)} Nothing was re-submitted.")
        if not count:
            return Outcome(False, "Every request of this batch succeeded: there is nothing to re-submit.")
        retry_file.seek(0)
        metadata, dropped = retry_metadata(batch.metadata, batch.batch_id)
        try:
            uploaded = client.upload_file(
                filename=f"{batch.batch_id}_retry.jsonl", content=retry_file, purpose="batch"
            )
        except APIError as error:
            return Outcome(False, f"Uploading the failed requests failed. {explain(error)}")
        try:
            api_batch = client.create_batch(
                input_file_id=uploaded.id,
                endpoint=batch.endpoint,
                completion_window=batch.completion_window or "24h",
                metadata=metadata,
            )
        except APIError as error:
            return Outcome(
                False,
                f"The failed requests were uploaded (file {uploaded.id}) but the batch was not created. "
                f"{explain(error)}",
            )
    new = _store(batch.connection, api_batch)
    message = f"Re-submitted {count:,} request{'s' if count != 1 else ''} as batch {new.batch_id}."
    if skipped:
        message += (
            f" {skipped:,} input line{'s' if skipped != 1 else ''} without a readable custom_id left out."
        )
    if dropped:
        message += f" Metadata keys left out to make room for {RETRY_OF_KEY}: {', '.join(dropped)}."
    logger.info("batch %s re-submitted as %s with %d requests", batch.batch_id, new.batch_id, count)
    return Outcome(True, message, new)


# --------------------------------------------------------------------------- creating from an upload

# Only the first problems are listed (the API itself reports at most 100); the rest are counted per
# kind, so a file with a problem on every line costs a page of constant size.
MAX_LISTED_PROBLEMS = 100
# A line longer than this is reported, not read: it bounds what one line can cost (its bytes, its
# text and its parsed form, about 4x this in all). The API's own cap on a request's payload is larger
# for image inputs, but such lines are rare in batch files and refusing one says why.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Duplicate custom_ids are found through a dict of 64-bit hashes of the ids seen, each with its first
# line. A file with more than MAX_LINES requests is refused anyway, so past that many ids new ones are
# not remembered (later repeats of remembered ids are still found): about 5 MB at most, whatever the
# file. Two different ids share a hash with odds of about 1 in 10**10 for a full file; the hash is
# keyed per process, so even that would not repeat on a second try.
MAX_REMEMBERED_IDS = MAX_LINES
# Enough of the file's start to tell UTF-16 and UTF-32 (NUL bytes between ASCII letters) from UTF-8.
SNIFF_BYTES = 4096
UTF8_BOM = b"\xef\xbb\xbf"

# Each kind of problem a line can have, with the words the page counts it under.
PROBLEM_KINDS: dict[str, str] = {
    "too_long": "line too long to check",
    "empty": "empty line",
    "utf8": "not valid UTF-8",
    "json": "not valid JSON",
    "object": "not a JSON object",
    "custom_id": "custom_id missing or not a string",
    "duplicate": "custom_id used again",
    "method": "method is not POST",
    "url": "url is not the endpoint",
    "body": "body missing or not an object",
    "model": "body.model missing",
    "mixed_model": "more than one model",
}


@dataclass(frozen=True)
class LineProblem:
    line: int | None  # None: the file as a whole
    reason: str
    kind: str = ""

    def __str__(self) -> str:
        return f"Line {self.line}: {self.reason}" if self.line is not None else self.reason


@dataclass
class ValidationReport:
    """What is wrong with a file, in constant memory: problems of the file as a whole, the first
    MAX_LISTED_PROBLEMS problems of its lines, and how many problems of each kind there are."""

    file_problems: list[LineProblem] = field(default_factory=list)
    line_problems: list[LineProblem] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    bad_lines: int = 0
    lines: int = 0
    inputs: int = 0
    model: str | None = None

    @property
    def problems(self) -> list[LineProblem]:
        """What the page lists: the file's problems first, then the first problems of its lines."""
        return self.file_problems + self.line_problems

    @property
    def problem_count(self) -> int:
        return sum(self.counts.values())

    @property
    def unlisted(self) -> int:
        return self.problem_count - len(self.line_problems)

    @property
    def kinds(self) -> list[tuple[str, int]]:
        return [(PROBLEM_KINDS.get(kind, kind), count) for kind, count in self.counts.most_common()]

    @property
    def ok(self) -> bool:
        return not self.file_problems and not self.counts

    def add(self, number: int, kind: str, reason: str, repeat: int = 1) -> None:
        """`repeat` lines from `number` on have this problem."""
        self.counts[kind] += repeat
        room = MAX_LISTED_PROBLEMS - len(self.line_problems)
        if room > 0:
            for offset in range(min(room, repeat)):
                self.line_problems.append(LineProblem(number + offset, reason, kind))


_NEWLINES = re.compile(rb"\n+")


def _split_lines(chunks: Iterable[bytes], limit: int) -> Iterator[tuple[bytes | None, int]]:
    """Every line, split on \\n as the API does (not on a lone \\r), as (line, 1); a run of n empty
    lines as (b"", n), so a file of blank lines costs no Python work per line; a line longer than
    `limit` as (None, 1), its bytes skipped rather than kept."""
    pending = bytearray()
    overlong = False
    for chunk in chunks:
        start, size = 0, len(chunk)
        while start < size:
            # Only the new chunk is searched, so a long line costs linear time, not quadratic.
            end = chunk.find(b"\n", start)
            if end == -1:
                if not overlong:
                    if len(pending) + size - start > limit:
                        overlong = True
                        pending = bytearray()  # give the memory back, not just empty it
                    else:
                        pending += memoryview(chunk)[start:]
                break
            if overlong:
                yield None, 1
                overlong = False
            elif pending:
                if len(pending) + end - start > limit:
                    yield None, 1
                else:
                    pending += memoryview(chunk)[start:end]
                    yield bytes(pending), 1
                pending = bytearray()
            elif end == start:
                run = _NEWLINES.match(chunk, start)
                assert run is not None  # chunk[start] is a newline
                yield b"", run.end() - start
                start = run.end()
                continue
            elif end - start > limit:
                yield None, 1
            else:
                yield chunk[start:end], 1
            start = end + 1
    if overlong:
        yield None, 1
    elif pending:
        yield bytes(pending), 1


def _skip(chunks: Iterable[bytes], count: int) -> Iterator[bytes]:
    """The stream without its first `count` bytes, however small its chunks."""
    for chunk in chunks:
        if count:
            dropped = min(count, len(chunk))
            chunk, count = chunk[dropped:], count - dropped
        if chunk:
            yield chunk


def _sniff(chunks: Iterator[bytes]) -> tuple[bytes, list[bytes]]:
    """The first SNIFF_BYTES of the stream, and the chunks read to get them (to be read again)."""
    taken: list[bytes] = []
    size = 0
    for chunk in chunks:
        taken.append(chunk)
        size += len(chunk)
        if size >= SNIFF_BYTES:
            break
    head = b"".join(chunk[:SNIFF_BYTES] for chunk in taken)[:SNIFF_BYTES]
    return head, taken


def _encoding_problem(head: bytes) -> str:
    """Why the file is not UTF-8 as a whole, or "" if it may be."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return (
            "The file is UTF-16 or UTF-32 (it starts with a byte order mark FF FE or FE FF). The Batch "
            "API reads UTF-8 only: save the file as UTF-8."
        )
    if b"\x00" in head:
        return (
            "The file holds NUL bytes, as UTF-16 and UTF-32 files do. The Batch API reads UTF-8 only: "
            "save the file as UTF-8."
        )
    return ""


def _embedding_inputs(body: dict[str, Any]) -> int:
    value = body.get("input")
    if isinstance(value, list) and value and not all(isinstance(v, int) for v in value):
        return len(value)  # a list of strings or of token arrays: one input each
    return 1


def _line_problems(
    item: Any, endpoint: str, number: int, first_ids: dict[int, int], model: list[Any], describe: bool
) -> list[tuple[str, str]]:
    """(kind, reason) of each problem of a parsed line; the reasons are "" unless `describe` (once
    the first problems are listed, the rest are only counted, so their words are not worth making)."""
    if not isinstance(item, dict):
        return [("object", "not a JSON object")]
    problems: list[tuple[str, str]] = []
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        problems.append(("custom_id", "custom_id is missing or not a non-empty string"))
    else:
        key = hash(custom_id)
        first = first_ids.get(key)
        if first is not None:
            problems.append(
                (
                    "duplicate",
                    f"custom_id {_clip(custom_id, 80)!r} is used again (first on line {first})"
                    if describe
                    else "",
                )
            )
        elif len(first_ids) < MAX_REMEMBERED_IDS:
            first_ids[key] = number
    method = item.get("method")
    if method != "POST":
        reason = f'method must be "POST", not {_clip(_compact(method), 40)}' if describe else ""
        problems.append(("method", reason))
    url = item.get("url")
    if url != endpoint:
        problems.append(
            (
                "url",
                f"url {_clip(_compact(url), 60)} does not match the endpoint {endpoint}" if describe else "",
            )
        )
    body = item.get("body")
    if not isinstance(body, dict):
        problems.append(("body", "body is missing or not a JSON object"))
        return problems
    body_model = body.get("model")
    if not isinstance(body_model, str) or not body_model:
        problems.append(("model", "body.model is missing"))
    elif model[0] is None:
        model[0], model[1] = body_model, number
    elif body_model != model[0]:
        # The API fails the whole batch for this, so say it now.
        problems.append(
            (
                "mixed_model",
                f"body.model {_clip(body_model, 60)!r} differs from {_clip(model[0], 60)!r} on line "
                f"{model[1]}: a batch uses one model"
                if describe
                else "",
            )
        )
    return problems


def _parse(raw: bytes) -> tuple[Any, tuple[str, str] | None]:
    """The line's JSON value, or the (kind, reason) of why it has none."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, ("utf8", f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1})")
    try:
        return json.loads(text), None
    except ValueError as error:
        detail = f" ({error.msg}, column {error.colno})" if isinstance(error, json.JSONDecodeError) else ""
        return None, ("json", f"not valid JSON{detail}")
    except RecursionError:
        return None, ("json", "not valid JSON (nested too deeply)")


def validate_upload(chunks: Iterable[bytes], endpoint: str, size: int | None = None) -> ValidationReport:
    """Check an input file the way the Batch API will, reading it once as a stream: memory stays the
    same whatever the file's size (MAX_LINE_BYTES, MAX_LISTED_PROBLEMS, MAX_REMEMBERED_IDS bound it)."""
    report = ValidationReport()
    if endpoint not in BATCH_ENDPOINTS:
        report.file_problems.append(LineProblem(None, f"Unknown endpoint {endpoint!r}."))
        return report
    if size is not None and size > MAX_BYTES:
        report.file_problems.append(
            LineProblem(
                None, f"The file is {size:,} bytes; a batch input file may hold at most {MAX_BYTES:,}."
            )
        )
        return report
    source = iter(chunks)
    head, taken = _sniff(source)
    encoding = _encoding_problem(head)
    if encoding:
        # Every line would be garbage: one clear message instead.
        report.file_problems.append(LineProblem(None, encoding))
        return report
    stream: Iterable[bytes] = chain(taken, source)
    if head.startswith(UTF8_BOM):
        report.file_problems.append(
            LineProblem(
                None,
                "The file starts with a UTF-8 byte order mark (BOM), which the Batch API does not accept: "
                "save it as UTF-8 without a BOM (often called plain UTF-8).",
            )
        )
        stream = _skip(stream, len(UTF8_BOM))  # so that line 1 is judged on its own merits

    total = 0
    over_size = False

    def counted(chunks: Iterable[bytes]) -> Iterator[bytes]:
        nonlocal total, over_size
        for chunk in chunks:
            total += len(chunk)
            if total > MAX_BYTES:
                over_size = True
                return  # the file is refused anyway; reading on would only cost time
            yield chunk

    first_ids: dict[int, int] = {}
    model: list[Any] = [None, None]
    number = 0
    for raw, repeat in _split_lines(counted(stream), MAX_LINE_BYTES):
        if raw is None:
            number += 1
            report.lines += 1
            report.bad_lines += 1
            report.add(
                number, "too_long", f"longer than {MAX_LINE_BYTES:,} bytes, the most the dashboard checks"
            )
            continue
        if not raw.strip():
            # The final newline ends the last line; any other empty line fails validation at the API.
            report.add(number + 1, "empty", "empty line", repeat)
            report.bad_lines += repeat
            number += repeat
            continue
        number += 1
        report.lines += 1
        item, failure = _parse(raw)
        describe = len(report.line_problems) < MAX_LISTED_PROBLEMS
        problems = (
            [failure] if failure else _line_problems(item, endpoint, number, first_ids, model, describe)
        )
        for kind, reason in problems:
            report.add(number, kind, reason)
        if problems:
            report.bad_lines += 1
        if failure:
            continue
        if endpoint == "/v1/embeddings" and isinstance(item, dict) and isinstance(item.get("body"), dict):
            report.inputs += _embedding_inputs(item["body"])
        else:
            report.inputs += 1
    report.model = model[0]
    if over_size:
        report.file_problems.insert(
            0, LineProblem(None, f"The file holds more than {MAX_BYTES:,} bytes; it was not read to its end.")
        )
    if report.lines == 0 and report.ok:
        report.file_problems.append(LineProblem(None, "The file is empty."))
    if report.lines > MAX_LINES:
        report.file_problems.insert(
            0,
            LineProblem(
                None, f"The file holds {report.lines:,} requests; a batch may hold at most {MAX_LINES:,}."
            ),
        )
    if endpoint == "/v1/embeddings" and report.inputs > MAX_EMBEDDING_INPUTS:
        report.file_problems.insert(
            0,
            LineProblem(
                None,
                f"The file holds {report.inputs:,} embedding inputs in all; an embeddings batch may hold at "
                f"most {MAX_EMBEDDING_INPUTS:,}.",
            ),
        )
    return report


def parse_metadata(
    text: str, *, reserved: Iterable[str] = (CREATED_BY_KEY,)
) -> tuple[dict[str, str], list[str]]:
    """`key=value` lines from a form into metadata, with the API's limits checked up front."""
    metadata: dict[str, str] = {}
    errors: list[str] = []
    reserved = set(reserved)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            errors.append(f"Line {number}: write key=value.")
        elif key in reserved:
            errors.append(f"Line {number}: {key} is set by the dashboard.")
        elif key in metadata:
            errors.append(f"Line {number}: the key {_clip(key, 40)!r} is given twice.")
        elif len(key) > MAX_METADATA_KEY_CHARS:
            errors.append(f"Line {number}: keys may be at most {MAX_METADATA_KEY_CHARS} characters.")
        elif len(value) > MAX_METADATA_VALUE_CHARS:
            errors.append(f"Line {number}: values may be at most {MAX_METADATA_VALUE_CHARS} characters.")
        else:
            metadata[key] = value
    room = MAX_METADATA_KEYS - len(reserved)
    if len(metadata) > room:
        errors.append(f"At most {room} metadata keys (the dashboard adds {', '.join(sorted(reserved))}).")
    return metadata, errors


def _upload_name(filename: str) -> str:
    name = os.path.basename(filename or "").strip() or "batch_input.jsonl"
    # The API insists on the extension for purpose "batch".
    if not name.lower().endswith(".jsonl"):
        name += ".jsonl"
    return name[-200:]


def create_from_upload(
    connection: Connection,
    *,
    upload: IO[bytes],
    filename: str,
    size: int | None,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str],
    user: AbstractBaseUser | AnonymousUser | None,
) -> Outcome:
    """Validate the whole file first (nothing reaches the API unless every line is valid), then upload
    it, create the batch with metadata naming who created it, and mirror it at once."""
    if completion_window not in COMPLETION_WINDOWS:
        return Outcome(False, f"Unknown completion window {completion_window!r}.")
    upload.seek(0)
    report = validate_upload(iter(lambda: upload.read(1024 * 1024), b""), endpoint, size)
    if not report.ok:
        count = report.bad_lines
        summary = f"{count:,} invalid line{'s' if count != 1 else ''}" if count else "The file is not valid"
        return Outcome(False, f"{summary}; nothing was uploaded.", report=report)
    username = user.get_username() if user is not None and user.is_authenticated else "unknown"
    full_metadata = {**metadata, CREATED_BY_KEY: username}
    try:
        client = _client(connection)
    except ResultsError as error:
        return Outcome(False, error.message)
    with client:
        upload.seek(0)
        try:
            uploaded = client.upload_file(filename=_upload_name(filename), content=upload, purpose="batch")
        except APIError as error:
            return Outcome(False, f"The upload failed. {explain(error)}")
        try:
            api_batch = client.create_batch(
                input_file_id=uploaded.id,
                endpoint=endpoint,
                completion_window=completion_window,
                metadata=full_metadata,
            )
        except APIError as error:
            return Outcome(
                False,
                f"The file was uploaded (file {uploaded.id}) but the batch was not created. {explain(error)}",
            )
    new = _store(connection, api_batch)
    logger.info("batch %s created by %s from %d requests", new.batch_id, username, report.lines)
    noun = "request" if report.lines == 1 else "requests"
    return Outcome(True, f"Batch {new.batch_id} created from {report.lines:,} {noun}.", new)
