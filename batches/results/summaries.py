"""What a JSONL line of a batch's files says, in a few words: pure parsing, no API and no database.

Used by the preview (a line's summary), the triage and the re-submit (whether a result line failed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SUMMARY_CHARS = 160


def clip(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compact(value: Any) -> str:
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
    return clip(" · ".join(parts)) if parts else clip(compact(body))


def response_summary(body: Any) -> str:
    if not isinstance(body, dict):
        return clip(compact(body))
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
        return clip(text + (f" [{finish}]" if finish and finish != "stop" else ""))
    output = body.get("output")
    if isinstance(output, list):
        texts = [
            _text_of(item.get("content"))
            for item in output
            if isinstance(item, dict) and item.get("type") == "message"
        ]
        text = " ".join(t for t in texts if t)
        return clip(text) if text else f"(no text; status {body.get('status', 'unknown')})"
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
        return clip("flagged: " + (", ".join(names) or "yes"))
    return clip(compact(body))


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
    return f"http_{status}", clip(compact(body)), status


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
        return PreviewLine(number, "", None, clip(f"Not a JSON object: {snippet}"), failed=True)
    custom_id = item.get("custom_id")
    custom_id = custom_id if isinstance(custom_id, str) else ("" if custom_id is None else str(custom_id))
    if kind == "input":
        request = f"{item.get('method', '?')} {item.get('url', '?')}"
        return PreviewLine(number, custom_id, None, request_summary(item.get("body")), request=request)
    failure = failure_of(item)
    if failure is not None:
        code, message, status = failure
        return PreviewLine(number, custom_id, status, clip(f"{code}: {message}"), failed=True)
    response = item.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    body = response.get("body") if isinstance(response, dict) else None
    return PreviewLine(number, custom_id, status if isinstance(status, int) else None, response_summary(body))
