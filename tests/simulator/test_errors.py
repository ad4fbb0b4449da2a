"""Every error the simulator sends has the API's JSON error shape, as the real API's do (issue 13,
hole 13): also those that http.server would answer with its own HTML page (an unsupported method, a
bad request line, headers too long)."""

from __future__ import annotations

import json
import socket

import pytest

from simulator.server import start_in_thread, stop
from simulator.state import SimWorld


@pytest.fixture(scope="module")
def address():
    server, _ = start_in_thread(SimWorld(seed=1, batches=3, speed=0))
    yield server.server_address[:2]
    stop(server)


def exchange(address, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the answer to the end (every error here closes the connection)."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(body)))
    return int(status_line.split(" ")[1]), headers, body[:length]


def assert_api_error(status: int, headers: dict[str, str], body: bytes, expected_status: int) -> dict:
    assert status == expected_status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert b"<html" not in body.lower() and b"<!doctype" not in body.lower()
    return error


AUTH = b"Authorization: Bearer sk-test\r\n"


@pytest.mark.parametrize("method", [b"TRACE", b"CONNECT", b"FOO"])
def test_an_unsupported_method_on_an_api_path_is_a_json_405(address, method):
    request = method + b" /v1/batches HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Connection: close\r\n\r\n"
    status, headers, body = exchange(address, request)
    error = assert_api_error(status, headers, body, 405)
    assert "Invalid method for URL" in error["message"]
    assert headers["allow"] == "GET, POST"


def test_an_unsupported_method_on_an_unknown_path_is_a_json_404(address):
    status, headers, body = exchange(address, b"TRACE /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert_api_error(status, headers, body, 404)


@pytest.mark.parametrize(
    ("request_bytes", "expected_status"),
    [
        (b"GET /v1/batches HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400),  # bad request syntax
        (b"GET /v1/batches HTTP/x.y\r\nHost: x\r\n\r\n", 400),  # bad request version
        (b"GET /v1/batches HTTP/2.0\r\nHost: x\r\n\r\n", 505),  # a version http.server does not speak
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),  # request line too long
        (b"GET /v1/batches HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431),  # header too long
        (b"GET /v1/batches HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431),
    ],
    ids=["syntax", "version", "unsupported-version", "long-line", "long-header", "many-headers"],
)
def test_a_request_http_server_refuses_gets_a_json_error(address, request_bytes, expected_status):
    status, headers, body = exchange(address, request_bytes)
    assert_api_error(status, headers, body, expected_status)
    assert headers.get("connection") == "close"


def test_a_head_request_for_an_unsupported_method_error_has_no_body(address):
    # The error of a HEAD announces its JSON but sends no body, as any answer to HEAD.
    status, headers, body = exchange(
        address, b"HEAD /v1/batches/nope/cancel HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Connection: close\r\n\r\n"
    )
    assert status == 405 and headers["content-type"] == "application/json" and body == b""
