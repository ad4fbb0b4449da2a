"""HTTP client for the OpenAI Batch and Files API.

This is the only module in the project that speaks HTTP to the API. Callers get frozen,
tolerant result objects and one exception hierarchy modelled on the official SDKs; no httpx
object and no API key ever leaks past this module.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib import metadata as importlib_metadata
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx

from batches.jsonl import split_lines
from batches.statuses import KNOWN_STATUSES, TERMINAL_STATUSES
from dashboard import outbound

_INITIAL_RETRY_DELAY = 0.5
_MAX_RETRY_DELAY = 8.0
_MAX_RETRY_AFTER = 60.0
_MAX_BATCH_PAGE = 100
_MAX_FILE_PAGE = 10_000
_REDACTED = "[REDACTED]"
BATCH_TIMESTAMP_FIELDS = (
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

_T = TypeVar("_T")


# --------------------------------------------------------------------------- exceptions


class APIError(Exception):
    """Anything that went wrong talking to the API. The client redacts the key before raising."""

    # Whether the message came from an API error body ({"error": {"message": ...}}) rather than from
    # the first bytes of whatever answered: only the former is fit to quote to a user (a "Test" of a
    # connection pointed somewhere else must not echo that other server's page).
    from_error_body: bool = False

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        # Only the message goes into args so that pickling (Celery results) can rebuild us.
        super().__init__(message)
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.status_code = status_code

    def __str__(self) -> str:
        details = [
            f"HTTP {self.status_code}" if self.status_code is not None else None,
            f"type={self.type}" if self.type else None,
            f"code={self.code}" if self.code else None,
            f"param={self.param}" if self.param else None,
            f"request_id={self.request_id}" if self.request_id else None,
        ]
        shown = ", ".join(detail for detail in details if detail)
        return f"{self.message} [{shown}]" if shown else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class APIStatusError(APIError):
    """The API answered with a non-2xx status."""


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    pass


class APITimeoutError(APIError):
    pass


class APIConnectionError(APIError):
    pass


class MalformedResponseError(APIError):
    """Non-JSON body, JSON of the wrong shape, or a body cut off mid-stream."""


# Transport errors whose text is about the connection itself (refused, unresolved, TLS), not bytes the
# other side sent; a protocol error's text can quote what answered (h11 quotes a bad status line).
_CONNECT_FAILURE = re.compile(r"Could not reach the API \((ConnectError|ConnectTimeout)\b")


def describe(
    error: APIError,
    *,
    refused: str = "",
    gone: str = "",
    undone: str = "",
    base_url_unproven: bool = False,
) -> str:
    """An API error in plain words for a page or a message; the client scrubbed the key from it.

    refused: the words before the API's own message when it refused ("The API refused to cancel");
        without them a refused key is told apart from other errors.
    gone: what a 404 means to the caller ("The API no longer knows this batch"); without it a 404 is
        one more error.
    undone: what the failure left undone ("nothing was cancelled"), so the reader knows that trying
        again is safe.
    base_url_unproven: the base URL may point at any server (a connection's "Test"). The words then
        quote the API's own error message only when an API error body carried one, otherwise only the
        status or the kind of failure: never the bytes of whatever answered, whose page is not the
        admin's to read through ours.
    """
    if base_url_unproven:
        status = f"HTTP {error.status_code}" if error.status_code is not None else None
        if isinstance(error, APIStatusError):
            if error.from_error_body:
                return f"the API answered with an error: {error}"
            return f"the server answered {status} without an API error body; check the base URL."
        if isinstance(error, MalformedResponseError):
            answered = f"answered {status}" if status else "answered"
            return f"the server {answered}, but not as the Batch API does; check the base URL."
        if isinstance(error, APITimeoutError):
            return "the API did not answer in time."
        if isinstance(error, APIConnectionError) and _CONNECT_FAILURE.match(error.message):
            return str(error)
        return f"could not talk to the API ({type(error).__name__}); check the base URL."
    after = f"; {undone}" if undone else ""
    if gone and isinstance(error, NotFoundError):
        return f"{gone}{after}."
    if isinstance(error, RateLimitError):
        return f"The API is rate limiting us{after}. Try again in a minute."
    if isinstance(error, APITimeoutError | APIConnectionError):
        return f"The API could not be reached{after}. Try again."
    if refused:
        return f"{refused}: {error.message or error}"
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return f"The API refused this connection's key: {error.message}"
    return f"The API answered with an error: {error.message or error}"


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


# --------------------------------------------------------------------------- parsing helpers


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _parse_timestamp(value: Any, name: str, problems: list[str]) -> datetime | None:
    if value is None:
        return None
    try:
        # Nearly every timestamp is a plain int: type() tells that apart cheapest.
        if type(value) is int or (isinstance(value, int | float) and not isinstance(value, bool)):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            # The API works in UTC; reading a naive string as local time would shift it.
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    problems.append(f"{name}: unparseable timestamp {_short(value)}")
    return None


def _optional_str(value: Any, name: str, problems: list[str]) -> str | None:
    if value is None or isinstance(value, str):
        return value
    problems.append(f"{name}: expected a string, got {_short(value)}")
    return str(value)


def _file_id(value: Any, name: str, problems: list[str]) -> str | None:
    # Proxies and older API versions send "" for a file that does not exist (yet).
    if isinstance(value, str) and not value.strip():
        return None
    return _optional_str(value, name, problems)


# The largest counts a batch can carry into the database: request counts are integer columns, 32-bit
# on PostgreSQL (a batch holds at most 50,000 requests), token counts 64-bit ones. A count beyond them
# (10**20 from a broken proxy, say) made the database refuse the whole page it came in; it is now
# kept in the raw JSON only, and flagged.
MAX_REQUEST_COUNT = 2**31 - 1
MAX_TOKEN_COUNT = 2**63 - 1
INVALID_VALUE = "invalid value from the API"


def _count(
    data: dict[str, Any], key: str, prefix: str, problems: list[str], maximum: int = MAX_REQUEST_COUNT
) -> int | None:
    """The count, 0 if absent or not an integer, None if beyond +-`maximum` (each flagged)."""
    value = data.get(key)
    # The usual case first, as cheaply as it can be told apart (bool is a subclass of int, not int).
    if type(value) is int and 0 <= value <= maximum:
        return value
    if value is None:
        return 0
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not value.is_integer())
    ):
        problems.append(f"{prefix}.{key}: not an integer: {_short(value)}")
        return 0
    if not -maximum - 1 <= value <= maximum:
        problems.append(f"{prefix}.{key}: {INVALID_VALUE} ({_short(value)} is out of range)")
        return None
    if value < 0:
        problems.append(f"{prefix}.{key} is negative ({int(value)})")
    return int(value)


def _request_count(data: dict[str, Any], key: str, problems: list[str]) -> int:
    # A count out of range is clamped rather than dropped, so that progress still reads as "done".
    count = _count(data, key, "request_counts", problems)
    if count is None:
        value = data[key]
        return MAX_REQUEST_COUNT if value > 0 else -MAX_REQUEST_COUNT - 1
    return count


def _sub_dict(data: dict[str, Any], key: str, problems: list[str]) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None or isinstance(value, dict):
        return value
    problems.append(f"{key}: expected an object, got {_short(value)}")
    return None


def _parse_request_counts(data: dict[str, Any], problems: list[str]) -> RequestCounts | None:
    raw = _sub_dict(data, "request_counts", problems)
    if raw is None:
        return None
    counts = RequestCounts(
        total=_request_count(raw, "total", problems),
        completed=_request_count(raw, "completed", problems),
        failed=_request_count(raw, "failed", problems),
    )
    if counts.completed > counts.total:
        problems.append(f"request_counts: completed ({counts.completed}) > total ({counts.total})")
    if counts.failed > counts.total:
        problems.append(f"request_counts: failed ({counts.failed}) > total ({counts.total})")
    if max(counts.completed, counts.failed) <= counts.total < counts.completed + counts.failed:
        problems.append(
            f"request_counts: completed + failed ({counts.completed + counts.failed})"
            f" > total ({counts.total})"
        )
    return counts


def _parse_usage(data: dict[str, Any], problems: list[str]) -> Usage | None:
    raw = _sub_dict(data, "usage", problems)
    if raw is None:
        return None
    input_details = _sub_dict(raw, "input_tokens_details", problems) or {}
    output_details = _sub_dict(raw, "output_tokens_details", problems) or {}
    # A token count out of range is None: no clamped figure would be true, and sums of them would
    # overflow in turn.
    return Usage(
        input_tokens=_count(raw, "input_tokens", "usage", problems, MAX_TOKEN_COUNT),
        cached_tokens=_count(input_details, "cached_tokens", "usage", problems, MAX_TOKEN_COUNT),
        output_tokens=_count(raw, "output_tokens", "usage", problems, MAX_TOKEN_COUNT),
        reasoning_tokens=_count(output_details, "reasoning_tokens", "usage", problems, MAX_TOKEN_COUNT),
        total_tokens=_count(raw, "total_tokens", "usage", problems, MAX_TOKEN_COUNT),
    )


def _parse_errors(value: Any, problems: list[str]) -> tuple[BatchErrorItem, ...]:
    items = value.get("data") if isinstance(value, dict) else value
    if items is None:
        return ()
    if not isinstance(items, list):
        problems.append(f"errors: expected a list, got {_short(value)}")
        return ()
    parsed: list[BatchErrorItem] = []
    for index, item in enumerate(items):
        name = f"errors[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{name}: expected an object, got {_short(item)}")
            continue
        line = item.get("line")
        if line is not None and (isinstance(line, bool) or not isinstance(line, int)):
            problems.append(f"{name}.line: not an integer: {_short(line)}")
            line = None
        parsed.append(
            BatchErrorItem(
                code=_optional_str(item.get("code"), f"{name}.code", problems),
                message=_optional_str(item.get("message"), f"{name}.message", problems),
                param=_optional_str(item.get("param"), f"{name}.param", problems),
                line=line,
            )
        )
    return tuple(parsed)


def _parse_metadata(value: Any, problems: list[str]) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(f"metadata: expected an object, got {_short(value)}")
        return None
    if not all(isinstance(item, str) for item in value.values()):
        problems.append("metadata: non-string values were converted to JSON text")
    return {str(key): item if isinstance(item, str) else json.dumps(item) for key, item in value.items()}


def _require_id(data: Any, kind: str) -> str:
    if not isinstance(data, dict):
        raise MalformedResponseError(f"Expected a {kind} object, got {_short(data)}")
    object_id = data.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise MalformedResponseError(f"The {kind} object has no 'id'")
    return object_id


def _list_items(data: Any) -> tuple[list[Any], bool]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise MalformedResponseError("Expected a list object with a 'data' array")
    # Anything but a literal true stops paging: a proxy that drops the flag must not loop us.
    return data["data"], data.get("has_more") is True


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class RequestCounts:
    total: int
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class BatchErrorItem:
    code: str | None
    message: str | None
    param: str | None
    line: int | None


@dataclass(frozen=True, slots=True)
class Usage:
    # None: the API sent a count out of range (see MAX_TOKEN_COUNT and the batch's problems).
    input_tokens: int | None
    cached_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    total_tokens: int | None


@dataclass(frozen=True, slots=True)
class ApiBatch:
    id: str
    object: str
    endpoint: str | None
    model: str | None
    status: str
    input_file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    completion_window: str | None
    created_at: datetime | None
    in_progress_at: datetime | None
    expires_at: datetime | None
    finalizing_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    expired_at: datetime | None
    cancelling_at: datetime | None
    cancelled_at: datetime | None
    request_counts: RequestCounts | None
    errors: tuple[BatchErrorItem, ...]
    usage: Usage | None
    # Dicts are unhashable; leaving them out of the hash keeps ApiBatch usable in sets.
    metadata: dict[str, str] | None = field(hash=False)
    raw: dict[str, Any] = field(hash=False, repr=False)
    problems: tuple[str, ...] = ()

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_known_status(self) -> bool:
        return self.status in KNOWN_STATUSES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiBatch:
        batch_id = _require_id(data, "batch")
        problems: list[str] = []
        status = data.get("status")
        if not isinstance(status, str) or not status:
            problems.append(f"status: missing or not a string: {_short(status)}")
            status = "" if status is None else str(status)
        timestamps: dict[str, datetime | None] = {}
        for name in BATCH_TIMESTAMP_FIELDS:
            value = data.get(name)
            # Most are null in any one batch: no call for those.
            timestamps[name] = None if value is None else _parse_timestamp(value, name, problems)
        return cls(
            id=batch_id,
            object=_optional_str(data.get("object"), "object", problems) or "batch",
            endpoint=_optional_str(data.get("endpoint"), "endpoint", problems),
            model=_optional_str(data.get("model"), "model", problems),
            status=status,
            input_file_id=_file_id(data.get("input_file_id"), "input_file_id", problems),
            output_file_id=_file_id(data.get("output_file_id"), "output_file_id", problems),
            error_file_id=_file_id(data.get("error_file_id"), "error_file_id", problems),
            completion_window=_optional_str(data.get("completion_window"), "completion_window", problems),
            **timestamps,
            request_counts=_parse_request_counts(data, problems),
            errors=_parse_errors(data.get("errors"), problems),
            usage=_parse_usage(data, problems),
            metadata=_parse_metadata(data.get("metadata"), problems),
            raw=data,
            problems=tuple(problems),
        )


@dataclass(frozen=True, slots=True)
class FileObject:
    id: str
    object: str
    bytes: int | None
    created_at: datetime | None
    expires_at: datetime | None
    filename: str | None
    purpose: str | None
    status: str | None
    status_details: str | None
    raw: dict[str, Any] = field(hash=False, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileObject:
        file_id = _require_id(data, "file")
        # FileObject has no problems field; oddities just become None.
        ignored: list[str] = []
        size = data.get("bytes")
        return cls(
            id=file_id,
            object=_str_or_none(data.get("object")) or "file",
            bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
            created_at=_parse_timestamp(data.get("created_at"), "created_at", ignored),
            expires_at=_parse_timestamp(data.get("expires_at"), "expires_at", ignored),
            filename=_str_or_none(data.get("filename")),
            purpose=_str_or_none(data.get("purpose")),
            status=_str_or_none(data.get("status")),
            status_details=_str_or_none(data.get("status_details")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class ApiBatchPage:
    data: tuple[ApiBatch, ...]
    first_id: str | None
    last_id: str | None
    has_more: bool
    raw: dict[str, Any] = field(hash=False, repr=False)
    # Items of the list that are not batch objects with an id, described: nothing can be stored for
    # them, and one of them must not cost the rest of the page (and every page after it).
    skipped: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApiBatchPage:
        items, has_more = _list_items(data)
        batches: list[ApiBatch] = []
        skipped: list[str] = []
        for position, item in enumerate(items):
            try:
                batches.append(ApiBatch.from_json(item))
            except MalformedResponseError as error:
                skipped.append(f"item {position + 1} of the page: {error}")
        return cls(
            data=tuple(batches),
            first_id=_str_or_none(data.get("first_id")),
            last_id=_str_or_none(data.get("last_id")),
            has_more=has_more,
            raw=data,
            skipped=tuple(skipped),
        )


@dataclass(frozen=True, slots=True)
class _FilePage:
    data: tuple[FileObject, ...]
    has_more: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _FilePage:
        items, has_more = _list_items(data)
        return cls(data=tuple(FileObject.from_json(item) for item in items), has_more=has_more)


_PageT = TypeVar("_PageT", ApiBatchPage, _FilePage)


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    api_key: str = field(repr=False)
    organization: str | None = None
    project: str | None = None
    auth_style: str = "bearer"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = 2
    extra_query: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.auth_style not in ("bearer", "azure"):
            raise ValueError(f"auth_style must be 'bearer' or 'azure', not {self.auth_style!r}")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")


@dataclass(frozen=True, slots=True)
class _Failure:
    error: APIError
    retryable: bool
    headers: httpx.Headers | None = None


def _package_version() -> str:
    try:
        return importlib_metadata.version("batch-dashboard")
    except importlib_metadata.PackageNotFoundError:
        return "0.1.0"


def _quoted(object_id: str) -> str:
    # An empty id would turn "batches/{id}" into the list endpoint; dot segments walk upwards.
    if not isinstance(object_id, str) or object_id in ("", ".", ".."):
        raise ValueError(f"Invalid object id: {object_id!r}")
    return quote(object_id, safe="")


def _finite_float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds the server asks us to wait, from retry-after-ms or retry-after."""
    millis = _finite_float(headers.get("retry-after-ms"))
    if millis is not None and millis >= 0:
        return millis / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite_float(value)
    if seconds is not None:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # A date already in the past means "go ahead now".
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _retry_delay(retries_done: int, headers: httpx.Headers | None) -> float:
    if headers is not None:
        requested = _retry_after_seconds(headers)
        # Like the official SDKs, an absurd or zero wait falls back to our own backoff.
        if requested is not None and 0 < requested <= _MAX_RETRY_AFTER:
            return requested
    base = min(_INITIAL_RETRY_DELAY * 2.0**retries_done, _MAX_RETRY_DELAY)
    return base * (1 - 0.25 * random.random())


def _status_is_retryable(response: httpx.Response) -> bool:
    should_retry = response.headers.get("x-should-retry", "").strip().lower()
    if should_retry in ("true", "false"):
        return should_retry == "true"
    return response.status_code in (408, 409, 429) or response.status_code >= 500


def _error_fields(body: bytes) -> dict[str, str | None]:
    try:
        payload = json.loads(body)
    except ValueError:
        return {}
    error = payload.get("error", payload) if isinstance(payload, dict) else None
    if isinstance(error, str):
        return {"message": error}
    if not isinstance(error, dict):
        return {}
    fields: dict[str, str | None] = {}
    for key in ("message", "type", "code", "param"):
        value = error.get(key)
        if value is not None:
            fields[key] = value if isinstance(value, str) else json.dumps(value)
    return fields


def _is_api_error_body(body: bytes) -> bool:
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    error = payload.get("error") if isinstance(payload, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str)


class BatchAPIClient:
    """Synchronous client; one instance keeps one connection pool, so reuse it."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._sleep = sleep
        # Every attempt counts, retries included, so callers can measure their API traffic.
        self.calls = 0
        headers = {
            "Accept": "application/json",
            "User-Agent": f"batch-dashboard/{_package_version()}",
        }
        if config.auth_style == "azure":
            headers["api-key"] = config.api_key
        else:
            headers["Authorization"] = f"Bearer {config.api_key}"
        if config.organization:
            headers["OpenAI-Organization"] = config.organization
        if config.project:
            headers["OpenAI-Project"] = config.project
        self._client = httpx.Client(
            base_url=config.base_url,
            headers=headers,
            params=config.extra_query or None,
            timeout=httpx.Timeout(
                connect=config.connect_timeout,
                read=config.read_timeout,
                write=config.read_timeout,
                pool=config.connect_timeout,
            ),
            transport=transport,
            verify=outbound.ssl_context(),
        )

    def __repr__(self) -> str:
        return f"BatchAPIClient(base_url={self._config.base_url!r})"

    def __enter__(self) -> BatchAPIClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # ----------------------------------------------------------------------- batches

    def list_batch_pages(self, *, limit: int = 100, after: str | None = None) -> Iterator[ApiBatchPage]:
        limit = max(1, min(_MAX_BATCH_PAGE, limit))
        return self._walk_pages("batches", {"limit": limit}, after, ApiBatchPage.from_json)

    def iter_batches(self, *, limit: int = 100, after: str | None = None) -> Iterator[ApiBatch]:
        for page in self.list_batch_pages(limit=limit, after=after):
            yield from page.data

    def retrieve_batch(self, batch_id: str) -> ApiBatch:
        return self._call("GET", f"batches/{_quoted(batch_id)}", ApiBatch.from_json)

    def cancel_batch(self, batch_id: str) -> ApiBatch:
        return self._call("POST", f"batches/{_quoted(batch_id)}/cancel", ApiBatch.from_json)

    def create_batch(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str = "24h",
        metadata: dict[str, str] | None = None,
        output_expires_after: dict[str, Any] | None = None,
    ) -> ApiBatch:
        body: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
        }
        if metadata is not None:
            body["metadata"] = metadata
        if output_expires_after is not None:
            body["output_expires_after"] = output_expires_after
        # A second create after a lost response would start (and bill) a duplicate batch.
        return self._call("POST", "batches", ApiBatch.from_json, json=body, retry_if_sent=False)

    # ----------------------------------------------------------------------- files

    def upload_file(self, *, filename: str, content: bytes | IO[bytes], purpose: str = "batch") -> FileObject:
        if not isinstance(content, bytes) and not content.seekable():
            # httpx rewinds seekable files before each attempt; a pipe must be buffered to retry.
            content = content.read()
        return self._call(
            "POST",
            "files",
            FileObject.from_json,
            data={"purpose": purpose},
            files={"file": (filename, content)},
        )

    def retrieve_file(self, file_id: str) -> FileObject:
        return self._call("GET", f"files/{_quoted(file_id)}", FileObject.from_json)

    def list_files(
        self, *, purpose: str | None = None, limit: int = 100, after: str | None = None
    ) -> Iterator[FileObject]:
        params: dict[str, Any] = {"limit": max(1, min(_MAX_FILE_PAGE, limit))}
        if purpose is not None:
            params["purpose"] = purpose
        for page in self._walk_pages("files", params, after, _FilePage.from_json):
            yield from page.data

    @contextmanager
    def stream_file_content(self, file_id: str, *, chunk_size: int = 65536) -> Iterator[Iterator[bytes]]:
        """Yield an iterator of body chunks; the connection is released when the block exits.

        Failures before the body starts are retried; a body cut off later raises
        MalformedResponseError, since chunks already handed out cannot be taken back.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        response = self._send("GET", f"files/{_quoted(file_id)}/content", stream=True)
        try:
            yield self._iter_chunks(response, chunk_size)
        finally:
            response.close()

    def iter_file_lines(self, file_id: str) -> Generator[bytes, None, None]:
        """Yield each non-blank line of a JSONL file, without line endings. Close the generator
        (contextlib.closing) to release the connection before the end of the file."""
        with self.stream_file_content(file_id) as chunks:
            for raw, _ in split_lines(chunks, sys.maxsize):
                if raw and (line := raw.strip()):
                    yield line

    # ----------------------------------------------------------------------- plumbing

    def _walk_pages(
        self,
        path: str,
        params: dict[str, Any],
        after: str | None,
        parse: Callable[[dict[str, Any]], _PageT],
    ) -> Iterator[_PageT]:
        seen: set[str] = set()
        cursor = after
        while True:
            query = dict(params)
            if cursor:
                query["after"] = cursor
            page = self._call("GET", path, parse, params=query)
            fresh = []
            for item in page.data:
                if item.id not in seen:
                    seen.add(item.id)
                    fresh.append(item)
            skipped = getattr(page, "skipped", ())
            # Some proxies ignore `after` and serve the same page forever: stop instead of looping.
            if not fresh and not skipped:
                return
            yield replace(page, data=tuple(fresh))
            if not page.has_more:
                return
            # After the last item that has an id; a page of nothing but malformed items goes on from
            # the API's own last_id, and without one there is no safe way on.
            cursor = page.data[-1].id if page.data else getattr(page, "last_id", None)
            if cursor is None:
                raise MalformedResponseError("A list page held no usable item and no last_id to go on from")

    def _call(
        self,
        method: str,
        path: str,
        parse: Callable[[dict[str, Any]], _T],
        *,
        retry_if_sent: bool = True,
        **request: Any,
    ) -> _T:
        response = self._send(method, path, retry_if_sent=retry_if_sent, **request)
        try:
            payload = json.loads(response.content)
        except ValueError:
            snippet = response.text[:200].strip()
            raise self._error(
                MalformedResponseError,
                f"Expected JSON from {method} {path}, got {snippet!r}",
                response,
            ) from None
        try:
            if not isinstance(payload, dict):
                raise MalformedResponseError(f"Expected a JSON object, got {_short(payload)}")
            return parse(payload)
        except MalformedResponseError as exc:
            raise self._error(MalformedResponseError, exc.message, response) from None

    def _send(
        self,
        method: str,
        path: str,
        *,
        retry_if_sent: bool = True,
        stream: bool = False,
        **request: Any,
    ) -> httpx.Response:
        """Send with retries; the returned response is read unless `stream` is set."""
        retries_done = 0
        while True:
            outcome = self._attempt(method, path, retry_if_sent, stream, request)
            if isinstance(outcome, httpx.Response):
                return outcome
            if not outcome.retryable or retries_done >= self._config.max_retries:
                raise outcome.error
            self._sleep(_retry_delay(retries_done, outcome.headers))
            retries_done += 1

    def _attempt(
        self, method: str, path: str, retry_if_sent: bool, stream: bool, request: dict[str, Any]
    ) -> httpx.Response | _Failure:
        self.calls += 1
        try:
            response = self._client.send(self._client.build_request(method, path, **request), stream=True)
        except httpx.TransportError as exc:
            # Nothing left the machine, so even a non-idempotent request is safe to repeat.
            nothing_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
            # A bad scheme or an invalid request will not fix itself on a second try.
            hopeless = isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError)
            return _Failure(self._transport_error(exc), nothing_sent or (retry_if_sent and not hopeless))

        if not response.is_success:
            try:
                body = response.read()
            except httpx.HTTPError:
                body = b""
            finally:
                response.close()
            return _Failure(
                self._status_error(response, body),
                retry_if_sent and _status_is_retryable(response),
                response.headers,
            )

        if stream:
            return response
        try:
            response.read()
        except httpx.TransportError as exc:
            error = (
                self._error(APITimeoutError, "Timed out reading the response body", response)
                if isinstance(exc, httpx.TimeoutException)
                else self._error(
                    MalformedResponseError,
                    f"The response body was cut off mid-stream ({type(exc).__name__})",
                    response,
                )
            )
            return _Failure(error, retry_if_sent)
        finally:
            response.close()
        return response

    def _iter_chunks(self, response: httpx.Response, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(chunk_size)
        except httpx.TimeoutException:
            raise self._error(APITimeoutError, "Timed out reading file content", response) from None
        except httpx.TransportError as exc:
            raise self._error(
                MalformedResponseError,
                f"File content was cut off mid-stream ({type(exc).__name__})",
                response,
            ) from None

    # ----------------------------------------------------------------------- errors

    def _redact(self, text: str | None) -> str | None:
        key = self._config.api_key
        return text.replace(key, _REDACTED) if text and key else text

    def _error(
        self,
        cls: type[APIError],
        message: str,
        response: httpx.Response | None = None,
        **fields: Any,
    ) -> APIError:
        """Build an exception with every string scrubbed of the API key."""
        cleaned: dict[str, Any] = {k: self._redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        if response is not None:
            cleaned["request_id"] = self._redact(response.headers.get("x-request-id"))
            cleaned["status_code"] = response.status_code
        return cls(self._redact(message) or "", **cleaned)

    def _status_error(self, response: httpx.Response, body: bytes) -> APIError:
        status = response.status_code
        fields: dict[str, Any] = _error_fields(body)  # and retry_after, a number, below
        message = fields.pop("message", None)
        if not message:
            snippet = " ".join(body[:200].decode("utf-8", "replace").split())
            message = f"HTTP {status} from the API" + (f": {snippet}" if snippet else "")
        cls = _STATUS_ERRORS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
        if cls is RateLimitError:
            fields["retry_after"] = _retry_after_seconds(response.headers)
        error = self._error(cls, message, response, **fields)
        error.from_error_body = _is_api_error_body(body)
        return error

    def _transport_error(self, exc: httpx.TransportError) -> APIError:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return self._error(APITimeoutError, f"Request timed out ({detail})")
        return self._error(APIConnectionError, f"Could not reach the API ({detail})")
