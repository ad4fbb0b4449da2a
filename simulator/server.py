"""The HTTP face of the simulator: the Batch and Files endpoints under /v1, controls under /_sim.

Standard library only (http.server). Requests to /v1 go through the same gates as at OpenAI:
authentication first, then (if configured) injected faults, then the endpoint. Control endpoints
under /_sim need no key and never see a fault, so tests can always reach them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from email.message import Message
from email.parser import HeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from simulator.errors import ApiError, invalid_type
from simulator.state import SimWorld

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 600 * 1024 * 1024  # uploads may be 512 MB, plus multipart framing
NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    "username. You can obtain an API key from https://platform.openai.com/account/api-keys."
)
JSON_BODY_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was "
    "not valid JSON. If you have trouble figuring out how to fix this, please contact us through "
    "our help center at help.openai.com.)"
)
BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class FaultConfig:
    """How often /v1 requests misbehave; every rate is a probability per request."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 2.0
    rate_cutoff: float = 0.0
    retry_after_seconds: float = 1.0
    seed: int = 0
    # Of the 5xx answers to writes (POST, DELETE), the share sent after the write took effect,
    # as happens when a gateway times out on a request that did reach the API: retrying such a
    # create makes a second batch, exactly as it would at OpenAI.
    rate_5xx_after_effect: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_5xx", "rate_slow", "rate_cutoff", "rate_5xx_after_effect"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if self.rate_429 + self.rate_5xx > 1.0:
            raise ValueError("rate_429 + rate_5xx must not exceed 1")
        for name in ("slow_seconds", "retry_after_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")

    @classmethod
    def from_dict(cls, data: Any) -> FaultConfig:
        if not isinstance(data, dict):
            raise ValueError("the fault configuration must be a JSON object")
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown fault setting {key!r}; known: {', '.join(known)}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            values[key] = int(value) if key == "seed" else float(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Decision:
    error: int | None = None  # 429, 500, 502 or 503
    after_effect: bool = False
    slow: bool = False
    cutoff: bool = False


class _Faults:
    """The current FaultConfig and its seeded random stream, shared by all handler threads."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self.config = config
        self._rng = random.Random(config.seed)

    def replace(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)

    def draw(self, method: str) -> tuple[FaultConfig, _Decision]:
        with self._lock:
            cfg, rng = self.config, self._rng
            # Always five draws, so the n-th request meets the same fate whatever came before.
            kind, which, after, slow, cut = (rng.random() for _ in range(5))
        error: int | None = None
        if kind < cfg.rate_429:
            error = 429
        elif kind < cfg.rate_429 + cfg.rate_5xx:
            error = 500 if which < 0.5 else 503 if which < 0.8 else 502
        return cfg, _Decision(
            error=error,
            after_effect=error not in (None, 429)
            and method in ("POST", "DELETE")
            and after < cfg.rate_5xx_after_effect,
            slow=slow < cfg.rate_slow,
            cutoff=error is None and cut < cfg.rate_cutoff,
        )


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] | None = None
    stream: tuple[int, Iterator[bytes]] | None = None  # (size, chunks) instead of body


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(payload).encode(), headers=headers)


def _error(error: ApiError) -> _Response:
    return _json(error.status, error.body())


class _BadRequest(Exception):
    pass


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        world: SimWorld,
        *,
        api_key: str | None,
        faults: FaultConfig | None,
    ) -> None:
        self.world = world
        self.api_key = api_key
        self.faults = _Faults(faults or FaultConfig())
        # Batch id -> an object merged into that batch wherever /v1 serves it (see /_sim/patch): how
        # tests serve values the real API might send but the simulated world never makes.
        self.patches: dict[str, dict[str, Any]] = {}
        self.verbose = False
        super().__init__(address, _Handler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}/v1"


class _SimServer6(SimServer):
    address_family = socket.AF_INET6


_Route = tuple[re.Pattern[str], dict[str, str]]
_API_ROUTES: list[_Route] = [
    (re.compile(r"/v1/files"), {"GET": "list_files", "POST": "upload_file"}),
    (re.compile(r"/v1/files/(?P<item_id>[^/]+)"), {"GET": "get_file", "DELETE": "delete_file"}),
    (re.compile(r"/v1/files/(?P<item_id>[^/]+)/content"), {"GET": "file_content"}),
    (re.compile(r"/v1/batches"), {"GET": "list_batches", "POST": "create_batch"}),
    (re.compile(r"/v1/batches/(?P<item_id>[^/]+)"), {"GET": "get_batch"}),
    (re.compile(r"/v1/batches/(?P<item_id>[^/]+)/cancel"), {"POST": "cancel_batch"}),
]
_CONTROL_ROUTES: list[_Route] = [
    (re.compile(r"/_sim/faults"), {"GET": "get_faults", "POST": "set_faults"}),
    (re.compile(r"/_sim/state"), {"GET": "sim_state"}),
    (re.compile(r"/_sim/advance"), {"POST": "sim_advance"}),
    (re.compile(r"/_sim/plan/(?P<item_id>[^/]+)"), {"GET": "sim_plan"}),
    (re.compile(r"/_sim/patch/(?P<item_id>[^/]+)"), {"GET": "get_patch", "POST": "set_patch"}),
]


class _Handler(BaseHTTPRequestHandler):
    server: SimServer
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect from api.openai.com
    server_version = "openai-batch-simulator"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is dropped after this many seconds
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add 40 ms to every keep-alive response.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, CONNECT, made-up ones) goes through the same routing, and gets the
        # API's JSON 404 or 405 rather than http.server's HTML 501.
        if name.startswith("do_"):
            return lambda: self._handle(name[3:])
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What http.server sends by itself (a bad request line, a line or headers too long, a version
        it does not speak), in the API's JSON error shape instead of its HTML page."""
        short = self.responses.get(code, ("Error", ""))[0]
        self.log_error("code %d, message %s", code, message)
        body = json.dumps(ApiError(code, message or short, type="invalid_request_error").body()).encode()
        # A request line that could not be parsed leaves http.server at HTTP/0.9, which would send the
        # body without a status line or headers; the API's servers answer in HTTP/1.1 all the same.
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        # The reason phrase is the standard one: `message` may quote the request line.
        self.send_response(code, short)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # --- dispatch -----------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        request_id = "req_" + uuid.uuid4().hex
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self._send(_error(ApiError(400, str(exc))), request_id, started)
            return

        control = path.startswith("/_sim/")
        route = self._match(_CONTROL_ROUTES if control else _API_ROUTES, path)
        if route is None:
            self._send(_error(ApiError(404, f"Invalid URL ({method} {parts.path})")), request_id, started)
            return
        methods, path_params = route
        if method not in methods:
            response = _error(ApiError(405, f"Invalid method for URL ({method} {parts.path})"))
            response.headers = {"allow": ", ".join(sorted(methods))}
            self._send(response, request_id, started)
            return
        action: Callable[..., _Response] = getattr(self, "_" + methods[method])
        if control:
            self._send(self._run(action, path_params, query, body), request_id, started)
            return

        denied = self._authenticate()
        if denied is not None:
            self._send(denied, request_id, started)
            return
        config, fate = self.server.faults.draw(method)
        if fate.slow:
            time.sleep(config.slow_seconds)
        if fate.error is not None and not fate.after_effect:
            self._send(self._fault(fate.error, config), request_id, started)
            return
        response = self._run(action, path_params, query, body)
        if fate.error is not None:
            self._send(self._fault(fate.error, config), request_id, started)
            return
        self._send(response, request_id, started, cutoff=fate.cutoff)

    @staticmethod
    def _match(routes: list[_Route], path: str) -> tuple[dict[str, str], dict[str, str]] | None:
        for pattern, methods in routes:
            match = pattern.fullmatch(path)
            if match:
                return methods, {k: unquote(v) for k, v in match.groupdict().items()}
        return None

    def _run(
        self,
        action: Callable[..., _Response],
        path_params: dict[str, str],
        query: dict[str, str],
        body: bytes,
    ) -> _Response:
        try:
            return action(body=body, query=query, **path_params)
        except ApiError as exc:
            return _error(exc)
        except Exception:
            # A bug in the simulator must look like what it is, not like a hung connection.
            logger.exception("simulator failed on %s %s", self.command, self.path)
            return _error(
                ApiError(
                    500,
                    "The simulator failed while processing your request.",
                    type="server_error",
                )
            )

    def _authenticate(self) -> _Response | None:
        key = ""
        authorization = self.headers.get("Authorization", "").strip()
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                key = value.strip()
        if not key:
            key = self.headers.get("api-key", "").strip()  # Azure OpenAI style
        if not key:
            return _error(ApiError(401, NO_KEY_MESSAGE))
        expected = self.server.api_key
        if expected is not None and key != expected:
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else "****"
            return _error(
                ApiError(
                    401,
                    f"Incorrect API key provided: {masked}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                )
            )
        return None

    @staticmethod
    def _fault(status: int, config: FaultConfig) -> _Response:
        if status == 429:
            seconds = config.retry_after_seconds
            return _json(
                429,
                {
                    "error": {
                        "message": "Rate limit reached for requests per min (RPM): Limit 1000, "
                        f"Used 1000, Requested 1. Please try again in {seconds:g}s. Visit "
                        "https://platform.openai.com/account/rate-limits to learn more.",
                        "type": "requests",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
                headers={
                    "retry-after": str(math.ceil(seconds)),
                    "retry-after-ms": str(round(seconds * 1000)),
                    "x-ratelimit-limit-requests": "1000",
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{seconds:g}s",
                },
            )
        if status == 502:
            # Gateway errors come from the CDN in front of the API, as HTML.
            return _Response(502, BAD_GATEWAY_HTML, content_type="text/html")
        message = (
            "The server had an error while processing your request. Sorry about that!"
            if status == 500
            else "The server is overloaded or not ready yet."
        )
        return _json(
            status,
            {"error": {"message": message, "type": "server_error", "param": None, "code": None}},
        )

    # --- I/O ----------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BadRequest("Malformed chunked request body.") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BadRequest("Request body too large.")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BadRequest("Invalid Content-Length header.") from None
        if size < 0 or size > MAX_BODY_BYTES:
            raise _BadRequest("Request body too large.")
        return self.rfile.read(size)

    def _send(self, response: _Response, request_id: str, started: float, *, cutoff: bool = False) -> None:
        size = response.stream[0] if response.stream is not None else len(response.body)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(size))
            self.send_header("x-request-id", request_id)
            self.send_header("openai-version", "2020-10-01")
            self.send_header("openai-processing-ms", str(round((time.monotonic() - started) * 1000)))
            for name, value in (response.headers or {}).items():
                self.send_header(name, value)
            if cutoff or self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if cutoff:
                self._write_cut(response, size)
                return
            if self.command == "HEAD":
                pass  # a HEAD answer announces a body it never sends
            elif response.stream is not None:
                for chunk in response.stream[1]:
                    self.wfile.write(chunk)
            else:
                self.wfile.write(response.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write_cut(self, response: _Response, size: int) -> None:
        """Send about half of the promised bytes, then drop the connection."""
        keep = size // 2
        if response.stream is not None:
            sent = 0
            for chunk in response.stream[1]:
                piece = chunk[: keep - sent]
                self.wfile.write(piece)
                sent += len(piece)
                if sent >= keep:
                    break
        else:
            self.wfile.write(response.body[:keep])
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- query parameters ---------------------------------------------------------------------

    @staticmethod
    def _int_param(query: dict[str, str], name: str, default: int) -> int:
        raw = query.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise invalid_type(name, "an integer", raw) from None

    @staticmethod
    def _json_body(body: bytes) -> Any:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, JSON_BODY_MESSAGE) from None

    # --- Files --------------------------------------------------------------------------------

    def _list_files(self, *, body: bytes, query: dict[str, str]) -> _Response:
        return _json(
            200,
            self.server.world.list_files(
                purpose=query.get("purpose"),
                limit=self._int_param(query, "limit", 10_000),
                after=query.get("after"),
                order=query.get("order", "desc"),
            ),
        )

    def _upload_file(self, *, body: bytes, query: dict[str, str]) -> _Response:
        content_type = self.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(
                400,
                f"Invalid Content-Type header ({content_type or 'none'}), expected "
                "multipart/form-data. (HINT: If you're using curl, you can pass -F "
                "'file=@<path>' to upload a file.)",
            )
        form = parse_multipart(body, content_type)
        if "purpose" not in form:
            raise ApiError(
                400,
                "Missing required parameter: 'purpose'.",
                param="purpose",
                code="missing_required_parameter",
            )
        upload = form.get("file")
        if upload is None or upload[0] is None:
            raise ApiError(
                400,
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )
        expires_after: dict[str, Any] | None = None
        anchor = form.get("expires_after[anchor]")
        seconds = form.get("expires_after[seconds]")
        if anchor is not None or seconds is not None:
            expires_after = {}
            if anchor is not None:
                expires_after["anchor"] = anchor[1].decode("utf-8", "replace")
            if seconds is not None:
                expires_after["seconds"] = seconds[1].decode("utf-8", "replace")
        return _json(
            200,
            self.server.world.create_file(
                filename=upload[0],
                purpose=form["purpose"][1].decode("utf-8", "replace"),
                data=upload[1],
                expires_after=expires_after,
            ),
        )

    def _get_file(self, *, body: bytes, query: dict[str, str], item_id: str) -> _Response:
        return _json(200, self.server.world.get_file(item_id))

    def _delete_file(self, *, body: bytes, query: dict[str, str], item_id: str) -> _Response:
        return _json(200, self.server.world.delete_file(item_id))

    def _file_content(self, *, body: bytes, query: dict[str, str], item_id: str) -> _Response:
        size, chunks = self.server.world.open_file(item_id)
        return _Response(200, content_type="application/octet-stream", stream=(size, chunks))

    # --- Batches ------------------------------------------------------------------------------

    def _patched(self, batch: dict[str, Any]) -> dict[str, Any]:
        patch = self.server.patches.get(batch.get("id", ""))
        return _merged(batch, patch) if patch else batch

    def _create_batch(self, *, body: bytes, query: dict[str, str]) -> _Response:
        return _json(200, self.server.world.create_batch(self._json_body(body)))

    def _list_batches(self, *, body: bytes, query: dict[str, str]) -> _Response:
        page = self.server.world.list_batches(
            limit=self._int_param(query, "limit", 20), after=query.get("after")
        )
        if self.server.patches:
            page["data"] = [self._patched(batch) for batch in page["data"]]
        return _json(200, page)

    def _get_batch(self, *, body: bytes, query: dict[str, str], item_id: str) -> _Response:
        return _json(200, self._patched(self.server.world.get_batch(item_id)))

    def _cancel_batch(self, *, body: bytes, query: dict[str, str], item_id: str) -> _Response:
        return _json(200, self._patched(self.server.world.cancel_batch(item_id)))

    # --- controls -----------------------------------------------------------------------------

    def _get_faults(self, *, body: bytes, query: dict[str, str]) -> _Response:
        return _json(200, self.server.faults.config.to_dict())

    def _set_faults(self, *, body: bytes, query: dict[str, str]) -> _Response:
        try:
            config = FaultConfig.from_dict(self._json_body(body) if body.strip() else {})
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        self.server.faults.replace(config)
        return _json(200, config.to_dict())

    def _sim_state(self, *, body: bytes, query: dict[str, str]) -> _Response:
        return _json(200, self.server.world.state())

    def _sim_advance(self, *, body: bytes, query: dict[str, str]) -> _Response:
        payload = self._json_body(body)
        seconds = payload.get("seconds") if isinstance(payload, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ApiError(400, 'Expected a JSON body {"seconds": N} with N >= 0.')
        return _json(200, {"now": self.server.world.advance(float(seconds))})

    def _sim_plan(self, *, body: bytes, query: dict[str, str], item_id: str) -> _Response:
        return _json(200, self.server.world.plan(item_id))

    def _get_patch(self, *, body: bytes, query: dict[str, str], item_id: str) -> _Response:
        return _json(200, {"id": item_id, "patch": self.server.patches.get(item_id, {})})

    def _set_patch(self, *, body: bytes, query: dict[str, str], item_id: str) -> _Response:
        patch = self._json_body(body)
        if not isinstance(patch, dict):
            raise ApiError(400, "Expected a JSON object to merge into the batch.")
        self.server.world.get_batch(item_id)  # 404 for a batch that does not exist
        if patch:
            self.server.patches[item_id] = patch
        else:
            self.server.patches.pop(item_id, None)
        return _json(200, {"id": item_id, "patch": patch})


def _merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`base` with `patch` merged in: objects merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in patch.items():
        current = merged.get(key)
        merged[key] = (
            _merged(current, value) if isinstance(current, dict) and isinstance(value, dict) else value
        )
    return merged


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename or None, content)."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ApiError(400, "Invalid multipart/form-data body: no boundary.")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    sections = (b"\r\n" + body).split(delimiter)
    if len(sections) < 2:
        raise ApiError(400, "Invalid multipart/form-data body.")
    form: dict[str, tuple[str | None, bytes]] = {}
    for section in sections[1:]:
        if section.startswith(b"--"):
            break
        line_end = section.find(b"\r\n")
        if line_end < 0:
            raise ApiError(400, "Invalid multipart/form-data body.")
        head, found, content = section[line_end + 2 :].partition(b"\r\n\r\n")
        if not found:
            raise ApiError(400, "Invalid multipart/form-data body.")
        # Clients send non-ASCII file names as raw UTF-8 in the part headers.
        headers = HeaderParser().parsestr(head.decode("utf-8", "replace") + "\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        form[name] = (headers.get_filename(), content)
    return form


def make_server(
    host: str,
    port: int,
    world: SimWorld,
    *,
    api_key: str | None = None,
    faults: FaultConfig | None = None,
) -> SimServer:
    """A server bound to host:port (0 picks a free port); call serve_forever() to run it."""
    cls = _SimServer6 if ":" in host else SimServer
    return cls((host, port), world, api_key=api_key, faults=faults)


def start_in_thread(
    world: SimWorld,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    faults: FaultConfig | None = None,
) -> tuple[SimServer, str]:
    """Serve from a daemon thread; returns the server and its base URL ending in /v1."""
    server = make_server(host, port, world, api_key=api_key, faults=faults)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return server, server.base_url


def stop(server: SimServer) -> None:
    server.shutdown()
    server.server_close()
