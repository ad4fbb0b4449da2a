"""HTTP client for the OpenAI Batch and Files API.

This is the only module in the project that speaks HTTP to the API. Callers get frozen,
tolerant result objects (batches.api.objects) and one exception hierarchy modelled on the official
SDKs (batches.api.errors); no httpx object and no API key ever leaks past this module.
"""

from __future__ import annotations

import json
import math
import random
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

from batches.api.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from batches.api.objects import ApiBatch, ApiBatchPage, FileObject, _FilePage, _short
from batches.jsonl import split_lines
from dashboard import outbound

_INITIAL_RETRY_DELAY = 0.5
_MAX_RETRY_DELAY = 8.0
_MAX_RETRY_AFTER = 60.0
_MAX_BATCH_PAGE = 100
_MAX_FILE_PAGE = 10_000
_REDACTED = "[REDACTED]"

_T = TypeVar("_T")
_PageT = TypeVar("_PageT", ApiBatchPage, _FilePage)

_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


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
