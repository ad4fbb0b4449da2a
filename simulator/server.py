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
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from simulator.endpoints import (
    API_ROUTES,
    CONTROL_ROUTES,
    Endpoints,
    Response,
    Route,
    error_response,
    json_response,
)
from simulator.errors import ApiError
from simulator.faults import FaultConfig, Faults
from simulator.state import SimWorld
from simulator.tally import RequestTally

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 600 * 1024 * 1024  # uploads may be 512 MB, plus multipart framing
NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    "username. You can obtain an API key from https://platform.openai.com/account/api-keys."
)
BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


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
        self.faults = Faults(faults or FaultConfig())
        # Batch id -> an object merged into that batch wherever /v1 serves it (see /_sim/patch): how
        # tests serve values the real API might send but the simulated world never makes.
        self.patches: dict[str, dict[str, Any]] = {}
        self.requests = RequestTally()
        self.verbose = False
        super().__init__(address, _Handler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        if isinstance(host, bytes):  # typeshed allows it; IP sockets give str
            host = host.decode()
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/v1"


class _SimServer6(SimServer):
    address_family = socket.AF_INET6


class _Handler(Endpoints, BaseHTTPRequestHandler):
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
        # One handler serves every request of a keep-alive connection: what the last one tallied must
        # not carry over.
        self._tallied_path: str | None = None
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self._send(error_response(ApiError(400, str(exc))), request_id, started)
            return

        control = path.startswith("/_sim/")
        route = self._match(CONTROL_ROUTES if control else API_ROUTES, path)
        if route is None:
            self._send(
                error_response(ApiError(404, f"Invalid URL ({method} {parts.path})")), request_id, started
            )
            return
        methods, path_params = route
        if method not in methods:
            message = f"Invalid method for URL ({method} {parts.path})"
            response = error_response(ApiError(405, message))
            response.headers = {"allow": ", ".join(sorted(methods))}
            self._send(response, request_id, started)
            return
        action: Callable[..., Response] = getattr(self, "_" + methods[method])
        if control:
            self._send(self._run(action, path_params, query, body), request_id, started)
            return

        self._tallied_path = path
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
    def _match(routes: list[Route], path: str) -> tuple[dict[str, str], dict[str, str]] | None:
        for pattern, methods in routes:
            match = pattern.fullmatch(path)
            if match:
                return methods, {k: unquote(v) for k, v in match.groupdict().items()}
        return None

    def _run(
        self,
        action: Callable[..., Response],
        path_params: dict[str, str],
        query: dict[str, str],
        body: bytes,
    ) -> Response:
        try:
            return action(body=body, query=query, **path_params)
        except ApiError as exc:
            return error_response(exc)
        except Exception:
            # A bug in the simulator must look like what it is, not like a hung connection.
            logger.exception("simulator failed on %s %s", self.command, self.path)
            return error_response(
                ApiError(
                    500,
                    "The simulator failed while processing your request.",
                    type="server_error",
                )
            )

    def _authenticate(self) -> Response | None:
        key = ""
        authorization = self.headers.get("Authorization", "").strip()
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                key = value.strip()
        if not key:
            key = self.headers.get("api-key", "").strip()  # Azure OpenAI style
        if not key:
            return error_response(ApiError(401, NO_KEY_MESSAGE))
        expected = self.server.api_key
        if expected is not None and key != expected:
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else "****"
            return error_response(
                ApiError(
                    401,
                    f"Incorrect API key provided: {masked}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                )
            )
        return None

    @staticmethod
    def _fault(status: int, config: FaultConfig) -> Response:
        if status == 429:
            seconds = config.retry_after_seconds
            return json_response(
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
            return Response(502, BAD_GATEWAY_HTML, content_type="text/html")
        message = (
            "The server had an error while processing your request. Sorry about that!"
            if status == 500
            else "The server is overloaded or not ready yet."
        )
        return json_response(
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

    def _send(self, response: Response, request_id: str, started: float, *, cutoff: bool = False) -> None:
        size = response.stream[0] if response.stream is not None else len(response.body)
        tallied = getattr(self, "_tallied_path", None)
        if tallied is not None:
            self.server.requests.record(self.command, tallied, response.status)
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

    def _write_cut(self, response: Response, size: int) -> None:
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
