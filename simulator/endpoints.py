"""What each route of the simulator answers: the Batch and Files endpoints and the /_sim controls.

`Endpoints` is mixed into the server's request handler, which finds the method a route names,
calls it with the request's body, query and path parameters, and sends the `Response` back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from typing import TYPE_CHECKING, Any

from simulator.errors import ApiError, invalid_type
from simulator.faults import FaultConfig

if TYPE_CHECKING:
    from simulator.server import SimServer

JSON_BODY_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was "
    "not valid JSON. If you have trouble figuring out how to fix this, please contact us through "
    "our help center at help.openai.com.)"
)


@dataclass
class Response:
    """One answer as the server will send it: a body, or a stream of known size."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] | None = None
    stream: tuple[int, Iterator[bytes]] | None = None  # (size, chunks) instead of body


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), headers=headers)


def error_response(error: ApiError) -> Response:
    return json_response(error.status, error.body())


Route = tuple[re.Pattern[str], dict[str, str]]
API_ROUTES: list[Route] = [
    (re.compile(r"/v1/files"), {"GET": "list_files", "POST": "upload_file"}),
    (re.compile(r"/v1/files/(?P<item_id>[^/]+)"), {"GET": "get_file", "DELETE": "delete_file"}),
    (re.compile(r"/v1/files/(?P<item_id>[^/]+)/content"), {"GET": "file_content"}),
    (re.compile(r"/v1/batches"), {"GET": "list_batches", "POST": "create_batch"}),
    (re.compile(r"/v1/batches/(?P<item_id>[^/]+)"), {"GET": "get_batch"}),
    (re.compile(r"/v1/batches/(?P<item_id>[^/]+)/cancel"), {"POST": "cancel_batch"}),
]
CONTROL_ROUTES: list[Route] = [
    (re.compile(r"/_sim/faults"), {"GET": "get_faults", "POST": "set_faults"}),
    (re.compile(r"/_sim/state"), {"GET": "sim_state"}),
    (re.compile(r"/_sim/requests"), {"GET": "sim_requests", "DELETE": "clear_requests"}),
    (re.compile(r"/_sim/advance"), {"POST": "sim_advance"}),
    (re.compile(r"/_sim/plan/(?P<item_id>[^/]+)"), {"GET": "sim_plan"}),
    (re.compile(r"/_sim/patch/(?P<item_id>[^/]+)"), {"GET": "get_patch", "POST": "set_patch"}),
]


class Endpoints:
    """The endpoints, one method per route name (`list_files` is `_list_files`); each raises
    ApiError for a request the API refuses."""

    server: SimServer
    headers: Message

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

    def _list_files(self, *, body: bytes, query: dict[str, str]) -> Response:
        return json_response(
            200,
            self.server.world.list_files(
                purpose=query.get("purpose"),
                limit=self._int_param(query, "limit", 10_000),
                after=query.get("after"),
                order=query.get("order", "desc"),
            ),
        )

    def _upload_file(self, *, body: bytes, query: dict[str, str]) -> Response:
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
        return json_response(
            200,
            self.server.world.create_file(
                filename=upload[0],
                purpose=form["purpose"][1].decode("utf-8", "replace"),
                data=upload[1],
                expires_after=expires_after,
            ),
        )

    def _get_file(self, *, body: bytes, query: dict[str, str], item_id: str) -> Response:
        return json_response(200, self.server.world.get_file(item_id))

    def _delete_file(self, *, body: bytes, query: dict[str, str], item_id: str) -> Response:
        return json_response(200, self.server.world.delete_file(item_id))

    def _file_content(self, *, body: bytes, query: dict[str, str], item_id: str) -> Response:
        size, chunks = self.server.world.open_file(item_id)
        return Response(200, content_type="application/octet-stream", stream=(size, chunks))

    # --- Batches ------------------------------------------------------------------------------

    def _patched(self, batch: dict[str, Any]) -> dict[str, Any]:
        patch = self.server.patches.get(batch.get("id", ""))
        return _merged(batch, patch) if patch else batch

    def _create_batch(self, *, body: bytes, query: dict[str, str]) -> Response:
        return json_response(200, self.server.world.create_batch(self._json_body(body)))

    def _list_batches(self, *, body: bytes, query: dict[str, str]) -> Response:
        page = self.server.world.list_batches(
            limit=self._int_param(query, "limit", 20), after=query.get("after")
        )
        if self.server.patches:
            page["data"] = [self._patched(batch) for batch in page["data"]]
        return json_response(200, page)

    def _get_batch(self, *, body: bytes, query: dict[str, str], item_id: str) -> Response:
        return json_response(200, self._patched(self.server.world.get_batch(item_id)))

    def _cancel_batch(self, *, body: bytes, query: dict[str, str], item_id: str) -> Response:
        return json_response(200, self._patched(self.server.world.cancel_batch(item_id)))

    # --- controls -----------------------------------------------------------------------------

    def _get_faults(self, *, body: bytes, query: dict[str, str]) -> Response:
        return json_response(200, self.server.faults.config.to_dict())

    def _set_faults(self, *, body: bytes, query: dict[str, str]) -> Response:
        try:
            config = FaultConfig.from_dict(self._json_body(body) if body.strip() else {})
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        self.server.faults.replace(config)
        return json_response(200, config.to_dict())

    def _sim_state(self, *, body: bytes, query: dict[str, str]) -> Response:
        return json_response(200, self.server.world.state())

    def _sim_requests(self, *, body: bytes, query: dict[str, str]) -> Response:
        return json_response(200, {"requests": self.server.requests.rows(query.get("path_prefix", ""))})

    def _clear_requests(self, *, body: bytes, query: dict[str, str]) -> Response:
        self.server.requests.clear()
        return json_response(200, {"requests": []})

    def _sim_advance(self, *, body: bytes, query: dict[str, str]) -> Response:
        payload = self._json_body(body)
        seconds = payload.get("seconds") if isinstance(payload, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ApiError(400, 'Expected a JSON body {"seconds": N} with N >= 0.')
        return json_response(200, {"now": self.server.world.advance(float(seconds))})

    def _sim_plan(self, *, body: bytes, query: dict[str, str], item_id: str) -> Response:
        return json_response(200, self.server.world.plan(item_id))

    def _get_patch(self, *, body: bytes, query: dict[str, str], item_id: str) -> Response:
        return json_response(200, {"id": item_id, "patch": self.server.patches.get(item_id, {})})

    def _set_patch(self, *, body: bytes, query: dict[str, str], item_id: str) -> Response:
        patch = self._json_body(body)
        if not isinstance(patch, dict):
            raise ApiError(400, "Expected a JSON object to merge into the batch.")
        self.server.world.get_batch(item_id)  # 404 for a batch that does not exist
        if patch:
            self.server.patches[item_id] = patch
        else:
            self.server.patches.pop(item_id, None)
        return json_response(200, {"id": item_id, "patch": patch})


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
