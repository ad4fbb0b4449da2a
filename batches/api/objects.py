"""The API's objects (a batch, a file, a page of a list) as frozen, typed results, and their parsing
from JSON.

Parsing is tolerant: an odd field becomes None or 0 and is described in the batch's `problems`, so one
bad value never costs the rest of the object. Only an object without an id is refused
(MalformedResponseError), since nothing could be stored for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from batches.api.errors import MalformedResponseError
from batches.statuses import KNOWN_STATUSES, TERMINAL_STATUSES

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
