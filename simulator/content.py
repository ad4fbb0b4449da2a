"""The JSONL lines the simulated Batch API reads and writes, in the real formats.

Seeded batches can hold up to 50,000 requests and there can be 10,000 of them, so their input,
output and error files are never materialised: every line is rendered from a template whose
variable parts have a fixed width, and each batch's requests follow a periodic pattern (template,
failure, cache hit) with a per-batch phase. That makes a file's exact size, the number of failed
requests among the first n and the token usage of the first n computable in O(1), which is what
lets `bytes`, `request_counts` and `usage` stay truthful without reading anything.

Uploaded batches are rendered line by line from the uploaded requests instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import struct
import zlib
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ENDPOINTS: tuple[str, ...] = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)

# Batch output bodies name the dated snapshot that served the request, not the alias requested.
MODEL_SNAPSHOTS: dict[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o4-mini": "o4-mini-2025-04-16",
    "o3": "o3-2025-04-16",
    "o3-mini": "o3-mini-2025-01-31",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "omni-moderation-latest": "omni-moderation-2024-09-26",
}

EMBEDDING_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}

UNFINISHED_MESSAGES: dict[str, str] = {
    "batch_expired": "This request could not be executed before the completion window expired.",
    "batch_cancelled": "This request was not executed because the batch was cancelled.",
}

PERIOD = 200  # lines; a multiple of the template count and of the cache-miss stride
TEMPLATES = 8
CACHE_MISS_STRIDE = 20  # one request in 20 misses the prompt cache (the first of each run)


def snapshot_of(model: str) -> str:
    return MODEL_SNAPSHOTS.get(model, model)


def is_reasoning_model(model: str) -> bool:
    return model.startswith(("o1", "o3", "o4", "gpt-5"))


def estimate_tokens(text: str) -> int:
    # About four characters per token for English text, as OpenAI's own rule of thumb says.
    return max(1, math.ceil(len(text) / 4))


# --- hashing helpers ---------------------------------------------------------------------------

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def hex_digest(text: str, length: int) -> str:
    size = max(1, (length + 1) // 2)
    out = hashlib.blake2b(text.encode(), digest_size=min(64, size)).hexdigest()
    while len(out) < length:
        out += hashlib.blake2b((text + out).encode(), digest_size=64).hexdigest()
    return out[:length]


def base62_digest(text: str, length: int) -> str:
    number = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=32).digest(), "big")
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 62)
        chars.append(_B62[rest])
    return "".join(chars)


# --- templates with fixed-width holes ----------------------------------------------------------


def S(name: str) -> str:
    """A string-valued hole: stays inside its JSON quotes."""
    return f"@@S:{name}@@"


def N(name: str) -> str:
    """A number-valued hole: its quotes are removed when the template is built."""
    return f"@@N:{name}@@"


_HOLE = re.compile(r'"@@N:(\w+)@@"|@@S:(\w+)@@')


def dumps(obj: Any) -> str:
    # The real files use Python-style separators (", " and ": ") and raw UTF-8.
    return json.dumps(obj, ensure_ascii=False)


class LineTemplate:
    """One JSONL line (with its newline) whose holes are filled with fixed-width ASCII values."""

    __slots__ = ("fields", "literal_bytes", "parts")

    def __init__(self, obj: Any) -> None:
        text = expand_embeddings(dumps(obj) + "\n")
        parts: list[str] = []
        fields: list[str] = []
        pos = 0
        for match in _HOLE.finditer(text):
            parts.append(text[pos : match.start()])
            fields.append(match.group(1) or match.group(2))
            pos = match.end()
        parts.append(text[pos:])
        self.parts = parts
        self.fields = fields
        self.literal_bytes = sum(len(p.encode()) for p in parts)

    def size(self, widths: Mapping[str, int]) -> int:
        return self.literal_bytes + sum(widths[f] for f in self.fields)

    def render(self, values: Mapping[str, str]) -> str:
        out = [self.parts[0]]
        for field, part in zip(self.fields, self.parts[1:], strict=True):
            out.append(values[field])
            out.append(part)
        return "".join(out)


# --- exemplar requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Exemplar:
    prompt: str
    answer: str


EXEMPLARS: tuple[Exemplar, ...] = (
    Exemplar(
        "Classify the sentiment of this review as positive, negative or mixed: 'The blender is "
        "loud, but it crushes ice in seconds and cleaning it takes no time.'",
        "mixed",
    ),
    Exemplar(
        "Summarise in one sentence: The city council approved a plan to extend the tram line by "
        "four stops, with construction starting next spring and service expected within two years.",
        "The council approved a four-stop tram extension, starting construction next spring and "
        "opening within two years.",
    ),
    Exemplar(
        "Extract the product name, colour and size from: 'Trailrunner 2 jacket, forest green, "
        "men's medium, water resistant.' Answer as JSON.",
        '{"product": "Trailrunner 2 jacket", "colour": "forest green", "size": "M"}',
    ),
    Exemplar(
        "Translate to French: 'Your order has shipped and should arrive on Thursday.'",
        "Votre commande a été expédiée et devrait arriver jeudi.",
    ),
    Exemplar(
        "Which support queue should handle this ticket: 'I was charged twice for my March "
        "invoice.' Options: billing, technical, account, other.",
        "billing",
    ),
    Exemplar(
        "Write a short, neutral product description for a stainless steel water bottle that "
        "keeps drinks cold for 24 hours.",
        "This stainless steel bottle keeps drinks cold for up to 24 hours. Its double-walled "
        "design prevents condensation, and the leak-proof lid makes it easy to carry in a bag.",
    ),
    Exemplar(
        "Is the following statement supported by the passage? Passage: 'The museum opens at 9 "
        "and closes at 5 on weekdays.' Statement: 'The museum is open at 6 pm on Tuesday.'",
        "No. The passage says the museum closes at 5 on weekdays, so it is not open at 6 pm on a Tuesday.",
    ),
    Exemplar(
        "Give three keywords for a search index for this title: 'Beginner's guide to sourdough starters'.",
        "sourdough, starter, baking",
    ),
)

SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are a careful assistant. Answer concisely and follow the requested format exactly.",
    "You label and summarise customer content for an internal analytics pipeline.",
    "You are an evaluation grader. Reply with the answer only, no explanations.",
)

# A shared system prompt long enough (>1,024 tokens) for the prompt cache to engage.
LONG_SYSTEM_PROMPT: str = " ".join(
    f"Rule {n}: when the input mentions a product, a place or a date, keep its original "
    f"spelling, do not invent facts that are not in the input, and prefer short answers."
    for n in range(1, 31)
)

EMBEDDING_TEXTS: tuple[str, ...] = (
    "How do I reset my password if I no longer have access to my email?",
    "Return policy: items can be returned within 30 days with the original receipt.",
    "The quarterly report shows revenue growth of 12% driven by subscriptions.",
    "Installation guide for the wall-mounted shelf, part number WS-220.",
    "Customer asks whether the jacket is suitable for heavy rain.",
    "Recipe: roast the vegetables at 200 degrees for 35 minutes, turning once.",
    "Error 504 when uploading large files through the web interface.",
    "Team offsite agenda: planning, retrospectives and a walking tour.",
)

MODERATION_TEXTS: tuple[str, ...] = (
    "Great service, would order again!",
    "This product broke after two days, really disappointed.",
    "Can someone explain how the refund process works?",
    "The delivery driver was rude and left the parcel in the rain.",
    "Love the new colour options, please add more sizes.",
    "Why is the app asking for my location all the time?",
    "Five stars, fast shipping and well packed.",
    "I want to cancel my subscription before the next billing date.",
)

MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


@dataclass(frozen=True)
class LineUsage:
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0


def reasoning_tokens_for(k: int) -> int:
    return 64 * (2 + (k * 5) % 11)


def chat_prompt_tokens(messages: list[Any]) -> int:
    # Each chat message costs a few tokens of framing on top of its text.
    total = 3
    for message in messages:
        content = message.get("content", "") if isinstance(message, dict) else ""
        total += 4 + estimate_tokens(content if isinstance(content, str) else dumps(content))
    return total


# --- request bodies ----------------------------------------------------------------------------


def request_body(endpoint: str, model: str, k: int, *, long_system: bool) -> dict[str, Any]:
    """The `body` of a seeded input line built from exemplar k."""
    ex = EXEMPLARS[k % len(EXEMPLARS)]
    # One system prompt per model keeps a batch's prompts sharing a prefix, as real ones do.
    system = LONG_SYSTEM_PROMPT if long_system else SYSTEM_PROMPTS[len(model) % len(SYSTEM_PROMPTS)]
    if endpoint == "/v1/chat/completions":
        body: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": ex.prompt},
            ],
        }
        if is_reasoning_model(model):
            body["max_completion_tokens"] = 4000
            body["reasoning_effort"] = "medium"
        else:
            body["max_tokens"] = 800
            body["temperature"] = 0.2
        return body
    if endpoint == "/v1/responses":
        body = {"model": model, "instructions": system, "input": ex.prompt}
        body["max_output_tokens"] = 4000 if is_reasoning_model(model) else 800
        if is_reasoning_model(model):
            body["reasoning"] = {"effort": "medium"}
        return body
    if endpoint == "/v1/embeddings":
        body = {"model": model, "input": EMBEDDING_TEXTS[k % 8], "encoding_format": "float"}
        if model.startswith("text-embedding-3"):
            body["dimensions"] = 256
        return body
    if endpoint == "/v1/completions":
        return {"model": model, "prompt": ex.prompt, "max_tokens": 400, "temperature": 0}
    if endpoint == "/v1/moderations":
        return {"model": model, "input": MODERATION_TEXTS[k % 8]}
    raise ValueError(f"no seeded request shape for {endpoint}")


def usage_for_body(
    endpoint: str, model: str, body: Mapping[str, Any], *, k: int, cache_hit: bool
) -> LineUsage:
    """Token usage of one successful request; answers come from exemplar k."""
    answer = estimate_tokens(EXEMPLARS[k % len(EXEMPLARS)].answer)
    reasoning = reasoning_tokens_for(k) if is_reasoning_model(model) else 0
    if endpoint == "/v1/chat/completions":
        messages = body.get("messages")
        prompt = chat_prompt_tokens(messages if isinstance(messages, list) else [])
    elif endpoint == "/v1/responses":
        prompt = (
            7
            + estimate_tokens(dumps(body.get("input", "")))
            + estimate_tokens(str(body.get("instructions") or ""))
        )
    elif endpoint == "/v1/embeddings":
        texts = _as_texts(body.get("input"))
        return LineUsage(input_tokens=sum(estimate_tokens(t) for t in texts) or 1)
    elif endpoint == "/v1/completions":
        prompt = estimate_tokens(dumps(body.get("prompt", "")))
    elif endpoint == "/v1/moderations":
        return LineUsage()
    elif endpoint in ("/v1/images/generations", "/v1/images/edits"):
        image_in = 323 if endpoint == "/v1/images/edits" else 0
        text = estimate_tokens(str(body.get("prompt", "")))
        return LineUsage(input_tokens=text + image_in, output_tokens=272)
    else:
        return LineUsage()
    # Cached prefixes are counted in blocks of 128 once at least 1,024 tokens match.
    cached = (prompt - 64) // 128 * 128 if cache_hit and prompt >= 1024 + 64 else 0
    return LineUsage(
        input_tokens=prompt,
        cached_tokens=cached,
        output_tokens=answer + reasoning,
        reasoning_tokens=reasoning,
    )


def _as_texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v if isinstance(v, str) else dumps(v) for v in value]
    return [dumps(value)] if value is not None else []


# --- response bodies ---------------------------------------------------------------------------


def _fingerprint(model: str) -> str:
    return "fp_" + hex_digest("fingerprint:" + model, 10)


# Embedding vectors are written as JSON text with a fixed width per value ("0.012345678", one of
# each pair negative), so the size of a line holding thousands of them is known without producing
# them. In a body they are a hole that is only filled when the line is written out.
_EMBEDDING_HOLE = re.compile(r'"@@E:([0-9a-f]{16}):(\d+)@@"')


def embedding_hole(key: str, dims: int) -> str:
    return f"@@E:{hex_digest('embedding:' + key, 16)}:{dims}@@"


def embedding_json(seed: str, dims: int) -> str:
    # Components of a unit vector: uniform magnitudes with E[x^2] = 1/dims.
    scale = min(0.999, math.sqrt(3.0 / dims))
    need = 2 * dims + dims // 16 + 1
    raw = bytearray()
    counter = 0
    while len(raw) < need:
        raw += hashlib.blake2b(f"{seed}:{counter}".encode(), digest_size=64).digest()
        counter += 1
    signs = raw[2 * dims :]
    values = []
    for j in range(dims):
        magnitude = int.from_bytes(raw[2 * j : 2 * j + 2], "big") / 65536 * scale
        pair = j // 2
        flip = signs[pair // 8] >> (pair % 8) & 1
        negative = j % 2 == flip and not (dims % 2 and j == dims - 1)
        values.append(f"{'-' if negative else ''}{magnitude:.9f}")
    return "[" + ", ".join(values) + "]"


def embedding_json_size(dims: int) -> int:
    return 2 + 11 * dims + dims // 2 + 2 * max(0, dims - 1)


def expand_embeddings(text: str) -> str:
    if "@@E:" not in text:
        return text
    return _EMBEDDING_HOLE.sub(lambda m: embedding_json(m.group(1), int(m.group(2))), text)


def expanded_size(text: str) -> int:
    """The size in bytes `expand_embeddings(text)` will have, without expanding anything."""
    size = len(text.encode())
    if "@@E:" in text:
        for match in _EMBEDDING_HOLE.finditer(text):
            size += embedding_json_size(int(match.group(2))) - len(match.group(0))
    return size


def _tiny_png() -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xd0\xd4\xdc")
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
    return base64.b64encode(png + chunk(b"IEND", b"")).decode()


TINY_PNG_B64 = _tiny_png()


def response_body(
    endpoint: str,
    model: str,
    body: Mapping[str, Any],
    k: int,
    usage: LineUsage,
    ids: Mapping[str, str],
    created: str | int,
) -> dict[str, Any]:
    """A successful response body as the real endpoint returns it.

    `ids` and `created` may be template holes (see S and N) or real values.
    """
    ex = EXEMPLARS[k % len(EXEMPLARS)]
    served = snapshot_of(model)
    if endpoint == "/v1/chat/completions":
        return {
            "id": ids["OID"],
            "object": "chat.completion",
            "created": created,
            "model": served,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": ex.answer,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": usage.reasoning_tokens,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": None if is_reasoning_model(model) else _fingerprint(model),
        }
    if endpoint == "/v1/responses":
        output: list[dict[str, Any]] = []
        if is_reasoning_model(model):
            output.append({"id": ids["RSID"], "type": "reasoning", "summary": []})
        output.append(
            {
                "id": ids["MID"],
                "type": "message",
                "status": "completed",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": ex.answer}],
                "role": "assistant",
            }
        )
        return {
            "id": ids["OID"],
            "object": "response",
            "created_at": created,
            "status": "completed",
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": served,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {
                "effort": "medium" if is_reasoning_model(model) else None,
                "summary": None,
            },
            "service_tier": "default",
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": usage.input_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens},
                "output_tokens": usage.output_tokens,
                "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
            "user": None,
            "metadata": {},
        }
    if endpoint == "/v1/embeddings":
        texts = _as_texts(body.get("input")) or [""]
        dims = body.get("dimensions")
        if not isinstance(dims, int) or dims <= 0:
            dims = EMBEDDING_DIMENSIONS.get(model, 1536)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": embedding_hole(f"{model}:{t}", dims)}
                for i, t in enumerate(texts)
            ],
            "model": model,
            "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
        }
    if endpoint == "/v1/completions":
        return {
            "id": ids["OID"],
            "object": "text_completion",
            "created": created,
            "model": served,
            "choices": [{"text": " " + ex.answer, "index": 0, "logprobs": None, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
        }
    if endpoint == "/v1/moderations":
        texts = _as_texts(body.get("input")) or [""]
        return {
            "id": ids["OID"],
            "model": served,
            "results": [_moderation_result(f"{k}:{t}") for t in texts],
        }
    if endpoint in ("/v1/images/generations", "/v1/images/edits"):
        return {
            "created": created,
            "background": "opaque",
            "data": [{"b64_json": TINY_PNG_B64}],
            "output_format": "png",
            "quality": "low",
            "size": "1024x1024",
            "usage": {
                "input_tokens": usage.input_tokens,
                "input_tokens_details": {
                    "image_tokens": 323 if endpoint == "/v1/images/edits" else 0,
                    "text_tokens": usage.input_tokens - (323 if endpoint == "/v1/images/edits" else 0),
                },
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
        }
    if endpoint == "/v1/videos":
        return {
            "id": ids["OID"],
            "object": "video",
            "created_at": created,
            "status": "queued",
            "model": str(body.get("model", model)),
            "progress": 0,
            "seconds": str(body.get("seconds", "4")),
            "size": str(body.get("size", "720x1280")),
            "remixed_from_video_id": None,
            "error": None,
        }
    raise ValueError(f"no response shape for {endpoint}")


def _moderation_result(key: str) -> dict[str, Any]:
    rng = random.Random("moderation:" + key)
    scores = {c: round(rng.uniform(1e-6, 2e-3), 9) for c in MODERATION_CATEGORIES}
    return {
        "flagged": False,
        "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
        "category_scores": scores,
        "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
    }


def object_id_width(endpoint: str) -> int:
    return len(object_id(endpoint, "x"))


def object_id(endpoint: str, key: str) -> str:
    if endpoint == "/v1/chat/completions":
        return "chatcmpl-" + base62_digest("oid:" + key, 29)
    if endpoint == "/v1/responses":
        return "resp_" + hex_digest("oid:" + key, 48)
    if endpoint == "/v1/completions":
        return "cmpl-" + base62_digest("oid:" + key, 29)
    if endpoint == "/v1/moderations":
        return "modr-" + hex_digest("oid:" + key, 32)
    if endpoint == "/v1/videos":
        return "video_" + hex_digest("oid:" + key, 48)
    return ""


def line_ids(endpoint: str, key: str) -> dict[str, str]:
    """The per-request identifiers of one output line, all fixed width."""
    digest = hex_digest("line:" + key, 64)
    return {
        "BREQ": "batch_req_" + digest[:32],
        "RID": digest[32:],
        "OID": object_id(endpoint, key),
        "MID": "msg_" + hex_digest("msg:" + key, 48),
        "RSID": "rs_" + hex_digest("rs:" + key, 48),
    }


ID_WIDTHS: dict[str, int] = {"BREQ": 42, "RID": 32, "MID": 52, "RSID": 51, "CREATED": 10}


# --- failures ----------------------------------------------------------------------------------

LINE_ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "context_length_exceeded": (
        400,
        {
            "message": "This model's maximum context length is 128000 tokens. However, you "
            "requested 131207 tokens (127111 in the messages, 4096 in the completion). Please "
            "reduce the length of the messages or completion.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        },
    ),
    "invalid_prompt": (
        400,
        {
            "message": "Invalid prompt: your prompt was flagged as potentially violating our "
            "usage policy. Please try again with a different prompt.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_prompt",
        },
    ),
    "embedding_too_long": (
        400,
        {
            "message": "This model's maximum context length is 8192 tokens, however you "
            "requested 9317 tokens (9317 in your prompt; 0 for the completion). Please reduce "
            "your prompt; or completion length.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    ),
    "server_error": (
        500,
        {
            "message": "The server had an error processing your request. Sorry about that! You "
            "can retry your request, or contact us through our help center at help.openai.com "
            "if you keep seeing this error.",
            "type": "server_error",
            "param": None,
            "code": None,
        },
    ),
}

_ERRORS_BY_ENDPOINT: dict[str, tuple[str, ...]] = {
    "/v1/chat/completions": ("context_length_exceeded", "invalid_prompt", "server_error"),
    "/v1/responses": ("context_length_exceeded", "invalid_prompt", "server_error"),
    "/v1/completions": ("context_length_exceeded", "server_error"),
    "/v1/embeddings": ("embedding_too_long", "server_error"),
}


def error_kinds(endpoint: str) -> tuple[str, ...]:
    return _ERRORS_BY_ENDPOINT.get(endpoint, ("server_error",))


def missing_parameter_error(param: str) -> tuple[int, dict[str, Any]]:
    return (
        400,
        {
            "message": f"Missing required parameter: '{param}'.",
            "type": "invalid_request_error",
            "param": param,
            "code": "missing_required_parameter",
        },
    )


def output_line(breq: str, custom_id: str, status: int, request_id: str, body: Any) -> dict[str, Any]:
    return {
        "id": breq,
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": None,
    }


def unfinished_line(breq: str, custom_id: str, code: str) -> dict[str, Any]:
    return {
        "id": breq,
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": UNFINISHED_MESSAGES[code]},
    }


def fail_positions(level: int, salt: str) -> frozenset[int]:
    """`level` failing positions out of every PERIOD requests, scattered, never evenly."""
    if level <= 0:
        return frozenset()
    rng = random.Random(f"fail:{salt}:{level}")
    return frozenset(rng.sample(range(PERIOD), min(level, PERIOD)))


# --- validation of input files -----------------------------------------------------------------

MAX_REQUESTS = 50_000
MAX_INPUT_BYTES = 200 * 1024 * 1024
MAX_REPORTED_ERRORS = 100  # the simulator reports at most this many line errors per batch


def batch_error(code: str, message: str, *, param: str | None, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def invalid_json_error(line: int) -> dict[str, Any]:
    return batch_error(
        "invalid_json_line", "This line is not parseable as valid JSON.", param=None, line=line
    )


def missing_required_error(param: str, line: int) -> dict[str, Any]:
    return batch_error(
        "missing_required_parameter",
        f"Missing required parameter: '{param}'.",
        param=param,
        line=line,
    )


def mismatched_model_error(model: str, expected: str, line: int) -> dict[str, Any]:
    return batch_error(
        "mismatched_model",
        f"The provided model '{model}' does not match the model '{expected}' used by the other "
        "requests in this batch. All requests in a batch must use the same model.",
        param="body.model",
        line=line,
    )


def invalid_url_error(line: int) -> dict[str, Any]:
    return batch_error(
        "invalid_url",
        "The URL provided for this request does not match the batch endpoint.",
        param="url",
        line=line,
    )


def invalid_method_error(method: Any, line: int) -> dict[str, Any]:
    return batch_error(
        "invalid_method",
        f"Invalid value: {method!r}. Supported values are: 'POST'.",
        param="method",
        line=line,
    )


def duplicate_custom_id_error(line: int) -> dict[str, Any]:
    return batch_error(
        "duplicate_custom_id",
        "The custom_id for this request is a duplicate of another request. The custom_id "
        "parameter must be unique for each request in a batch.",
        param="custom_id",
        line=line,
    )


def token_limit_error(model: str) -> dict[str, Any]:
    return batch_error(
        "token_limit_exceeded",
        f"Enqueued token limit reached for {model} in organization org-simulated. Limit: "
        "2,000,000 enqueued tokens. Please try again once some in_progress batches have been "
        "completed.",
        param=None,
        line=None,
    )


@dataclass(frozen=True)
class ParsedRequest:
    custom_id: str
    body: dict[str, Any]


def validate_input(data: bytes, endpoint: str) -> tuple[list[ParsedRequest], list[dict[str, Any]]]:
    """Check an uploaded batch input file the way the Batch API's validation step does.

    Returns the requests and an empty error list, or the errors (line numbers start at 1).
    """
    if len(data) > MAX_INPUT_BYTES:
        return [], [
            batch_error(
                "file_too_large",
                f"The batch input file is larger than the maximum of {MAX_INPUT_BYTES} bytes.",
                param=None,
                line=None,
            )
        ]
    lines = data.split(b"\n")
    if lines and lines[-1].strip() == b"":
        lines.pop()
    if not lines:
        return [], [batch_error("empty_file", "The batch input file is empty.", param=None, line=None)]
    if len(lines) > MAX_REQUESTS:
        return [], [
            batch_error(
                "too_many_requests_in_file",
                f"The batch input file contains {len(lines):,} requests; a batch can contain at "
                f"most {MAX_REQUESTS:,} requests.",
                param=None,
                line=None,
            )
        ]
    errors: list[dict[str, Any]] = []
    requests: list[ParsedRequest] = []
    seen: set[str] = set()
    first_model: str | None = None
    for number, raw in enumerate(lines, start=1):
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
        try:
            item = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            errors.append(invalid_json_error(number))
            continue
        if not isinstance(item, dict):
            errors.append(invalid_json_error(number))
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(missing_required_error("custom_id", number))
            continue
        if custom_id in seen:
            errors.append(duplicate_custom_id_error(number))
            continue
        seen.add(custom_id)
        if "method" not in item:
            errors.append(missing_required_error("method", number))
            continue
        if item["method"] != "POST":
            errors.append(invalid_method_error(item["method"], number))
            continue
        if "url" not in item:
            errors.append(missing_required_error("url", number))
            continue
        if item["url"] != endpoint:
            errors.append(invalid_url_error(number))
            continue
        body = item.get("body")
        if not isinstance(body, dict):
            errors.append(missing_required_error("body", number))
            continue
        model = body.get("model")
        if not isinstance(model, str) or not model:
            errors.append(missing_required_error("body.model", number))
            continue
        if first_model is None:
            first_model = model
        elif model != first_model:
            errors.append(mismatched_model_error(model, first_model, number))
            continue
        requests.append(ParsedRequest(custom_id, body))
    if errors:
        return [], errors
    return requests, []


# --- request sources ---------------------------------------------------------------------------


class RequestSource(ABC):
    """The requests of one batch and the result files they produce.

    Requests run in file order, so `n` (how many have been processed) says which ones have a
    result; `unfinished` is the error code written for the rest when a batch stops early.
    """

    endpoint: str
    model: str
    total: int

    @abstractmethod
    def failed_among(self, n: int) -> int:
        raise NotImplementedError

    @abstractmethod
    def usage_among(self, n: int) -> LineUsage:
        raise NotImplementedError

    @abstractmethod
    def output_size(self, n: int) -> int:
        raise NotImplementedError

    @abstractmethod
    def error_size(self, n: int, unfinished: str | None) -> int:
        raise NotImplementedError

    @abstractmethod
    def output_lines(self, n: int, finished_at: Callable[[int], int]) -> Iterator[str]:
        raise NotImplementedError

    @abstractmethod
    def error_lines(self, n: int, unfinished: str | None, finished_at: Callable[[int], int]) -> Iterator[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class ProfileKey:
    endpoint: str
    model: str
    cid_prefix: str
    fail_level: int
    long_system: bool


class _Templates:
    """The line templates of one (endpoint, model, long system prompt) combination."""

    def __init__(self, endpoint: str, model: str, long_system: bool) -> None:
        holes = {name: S(name) for name in ("OID", "MID", "RSID")}
        self.input: list[LineTemplate] = []
        self.ok: dict[tuple[int, bool], LineTemplate] = {}
        self.usages: dict[tuple[int, bool], LineUsage] = {}
        for k in range(TEMPLATES):
            body = request_body(endpoint, model, k, long_system=long_system)
            self.input.append(
                LineTemplate({"custom_id": S("CID"), "method": "POST", "url": endpoint, "body": body})
            )
            for hit in (False, True):
                usage = usage_for_body(endpoint, model, body, k=k, cache_hit=hit)
                self.usages[(k, hit)] = usage
                answer = response_body(endpoint, model, body, k, usage, holes, N("CREATED"))
                self.ok[(k, hit)] = LineTemplate(output_line(S("BREQ"), S("CID"), 200, S("RID"), answer))
        self.errors: dict[str, LineTemplate] = {
            kind: LineTemplate(
                output_line(
                    S("BREQ"),
                    S("CID"),
                    LINE_ERRORS[kind][0],
                    S("RID"),
                    {"error": LINE_ERRORS[kind][1]},
                )
            )
            for kind in error_kinds(endpoint)
        }
        self.unfinished: dict[str, LineTemplate] = {
            code: LineTemplate(unfinished_line(S("BREQ"), S("CID"), code)) for code in UNFINISHED_MESSAGES
        }


@lru_cache(maxsize=256)
def _templates_for(endpoint: str, model: str, long_system: bool) -> _Templates:
    return _Templates(endpoint, model, long_system)


class Profile:
    """Templates and per-period prefix sums shared by every seeded batch with the same key."""

    def __init__(self, key: ProfileKey) -> None:
        self.key = key
        endpoint, model = key.endpoint, key.model
        self.widths: dict[str, int] = dict(ID_WIDTHS)
        self.widths["CID"] = len(key.cid_prefix) + 6
        self.widths["OID"] = object_id_width(endpoint)
        templates = _templates_for(endpoint, model, key.long_system)
        self.input_templates = templates.input
        self.ok_templates = templates.ok
        self.usages = templates.usages
        self.error_templates = templates.errors
        self.unfinished_templates = templates.unfinished
        kinds = error_kinds(endpoint)
        failing = fail_positions(key.fail_level, f"{endpoint}:{model}")
        rng = random.Random(f"kinds:{endpoint}:{model}:{key.fail_level}")
        self.fails: list[str | None] = [rng.choice(kinds) if p in failing else None for p in range(PERIOD)]
        self.hits: list[bool] = [key.long_system and p % CACHE_MISS_STRIDE != 0 for p in range(PERIOD)]
        # Prefix sums over one period: index p holds the sum over positions [0, p).
        self.fail_prefix = array("q", [0])
        self.usage_prefix = [array("q", [0]) for _ in range(4)]
        self.ok_bytes = array("q", [0])
        self.err_bytes = array("q", [0])
        self.in_bytes = array("q", [0])
        ok_sizes = {key_: t.size(self.widths) for key_, t in self.ok_templates.items()}
        err_sizes = {kind: t.size(self.widths) for kind, t in self.error_templates.items()}
        in_sizes = [t.size(self.widths) for t in self.input_templates]
        for p in range(PERIOD):
            k = p % TEMPLATES
            kind = self.fails[p]
            usage = LineUsage() if kind else self.usages[(k, self.hits[p])]
            self.fail_prefix.append(self.fail_prefix[-1] + (1 if kind else 0))
            for i, value in enumerate(
                (
                    usage.input_tokens,
                    usage.cached_tokens,
                    usage.output_tokens,
                    usage.reasoning_tokens,
                )
            ):
                self.usage_prefix[i].append(self.usage_prefix[i][-1] + value)
            ok = 0 if kind else ok_sizes[(k, self.hits[p])]
            err = err_sizes[kind] if kind else 0
            self.ok_bytes.append(self.ok_bytes[-1] + ok)
            self.err_bytes.append(self.err_bytes[-1] + err)
            self.in_bytes.append(self.in_bytes[-1] + in_sizes[k])

    def unfinished_size(self, code: str) -> int:
        return self.unfinished_templates[code].size(self.widths)


@lru_cache(maxsize=512)
def profile_for(key: ProfileKey) -> Profile:
    return Profile(key)


def _span(prefix: array, start: int, n: int) -> int:
    """Sum of the periodic sequence described by `prefix` over positions [start, start+n)."""

    def upto(x: int) -> int:
        full, rest = divmod(x, PERIOD)
        return full * prefix[PERIOD] + prefix[rest]

    return upto(start + n) - upto(start)


class SeededRequests(RequestSource):
    """The requests of a seeded batch: periodic, generated on demand, never stored."""

    def __init__(
        self,
        key: ProfileKey,
        *,
        total: int,
        phase: int,
        batch_id: str,
        invalid: tuple[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.key = key
        self.endpoint = key.endpoint
        self.model = key.model
        self.total = total
        self.phase = phase
        self.batch_id = batch_id
        # (scenario, 0-based line indexes) of a file that fails validation; rendered on demand.
        self.invalid = invalid
        self._bad_lines: dict[int, str] | None = None

    @property
    def bad_lines(self) -> dict[int, str]:
        if self._bad_lines is None:
            self._bad_lines = {}
            if self.invalid is not None:
                scenario, lines = self.invalid
                self._bad_lines = {i: self._bad_line(scenario, i) for i in lines}
        return self._bad_lines

    def _bad_line(self, scenario: str, i: int) -> str:
        normal = self.input_line(i, honest=True)
        if scenario == "invalid_json_line":
            return normal.rstrip("\n")[:-1] + "\n"
        item = json.loads(normal)
        if scenario == "missing_custom_id":
            del item["custom_id"]
        elif scenario == "missing_model":
            del item["body"]["model"]
        elif scenario == "mismatched_model":
            item["body"]["model"] = other_model(self.model)
        elif scenario == "invalid_url":
            item["url"] = "/v1/completions" if self.endpoint != "/v1/completions" else "/v1/chat"
        elif scenario == "duplicate_custom_id":
            # Line 1 is never altered, so its custom_id is a sure duplicate.
            item["custom_id"] = self.custom_id(0)
        else:
            raise ValueError(f"unknown validation scenario {scenario!r}")
        return dumps(item) + "\n"

    @property
    def profile(self) -> Profile:
        return profile_for(self.key)

    def custom_id(self, i: int) -> str:
        return f"{self.key.cid_prefix}-{i:05d}"

    def _position(self, i: int) -> int:
        return (self.phase + i) % PERIOD

    def failed_among(self, n: int) -> int:
        return _span(self.profile.fail_prefix, self.phase, n)

    def usage_among(self, n: int) -> LineUsage:
        sums = [_span(prefix, self.phase, n) for prefix in self.profile.usage_prefix]
        return LineUsage(*sums)

    def input_size(self) -> int:
        size = _span(self.profile.in_bytes, self.phase, self.total)
        for i, text in self.bad_lines.items():
            size += len(text.encode()) - len(self.input_line(i, honest=True).encode())
        return size

    def input_line(self, i: int, *, honest: bool = False) -> str:
        if not honest and i in self.bad_lines:
            return self.bad_lines[i]
        k = self._position(i) % TEMPLATES
        return self.profile.input_templates[k].render({"CID": self.custom_id(i)})

    def input_body(self, i: int) -> dict[str, Any]:
        k = self._position(i) % TEMPLATES
        return request_body(self.endpoint, self.model, k, long_system=self.key.long_system)

    def input_lines(self) -> Iterator[str]:
        for i in range(self.total):
            yield self.input_line(i)

    def output_size(self, n: int) -> int:
        return _span(self.profile.ok_bytes, self.phase, n)

    def error_size(self, n: int, unfinished: str | None) -> int:
        size = _span(self.profile.err_bytes, self.phase, n)
        if unfinished:
            size += (self.total - n) * self.profile.unfinished_size(unfinished)
        return size

    def _values(self, i: int, created: int) -> dict[str, str]:
        values = line_ids(self.endpoint, f"{self.batch_id}:{i}")
        values["CID"] = self.custom_id(i)
        values["CREATED"] = str(created)
        return values

    def output_lines(self, n: int, finished_at: Callable[[int], int]) -> Iterator[str]:
        profile = self.profile
        for i in range(n):
            p = self._position(i)
            if profile.fails[p] is None:
                template = profile.ok_templates[(p % TEMPLATES, profile.hits[p])]
                yield template.render(self._values(i, finished_at(i)))

    def error_lines(self, n: int, unfinished: str | None, finished_at: Callable[[int], int]) -> Iterator[str]:
        profile = self.profile
        for i in range(n):
            kind = profile.fails[self._position(i)]
            if kind is not None:
                yield profile.error_templates[kind].render(self._values(i, finished_at(i)))
        if unfinished:
            template = profile.unfinished_templates[unfinished]
            for i in range(n, self.total):
                yield template.render(self._values(i, 0))


class UploadedRequests(RequestSource):
    """The requests of a batch created from an uploaded file: rendered from what was sent."""

    def __init__(
        self,
        endpoint: str,
        requests: list[ParsedRequest],
        *,
        batch_id: str,
        fail_level: int,
        phase: int,
    ) -> None:
        self.endpoint = endpoint
        self.requests = requests
        self.total = len(requests)
        self.model = requests[0].body["model"] if requests else ""
        self.batch_id = batch_id
        failing = fail_positions(fail_level, f"upload:{endpoint}")
        kinds = error_kinds(endpoint)
        self.fails: list[tuple[int, dict[str, Any]] | None] = []
        self.usages: list[LineUsage] = []
        fail_prefix = array("q", [0])
        usage_prefix = [array("q", [0]) for _ in range(4)]
        for i, request in enumerate(requests):
            failure = self._own_failure(request.body)
            p = (phase + i) % PERIOD
            if failure is None and p in failing:
                code = kinds[(i * 7 + phase) % len(kinds)]
                failure = (LINE_ERRORS[code][0], LINE_ERRORS[code][1])
            self.fails.append(failure)
            k = self._exemplar(request.custom_id)
            usage = (
                LineUsage()
                if failure
                else usage_for_body(
                    endpoint,
                    self.model,
                    request.body,
                    k=k,
                    cache_hit=i % CACHE_MISS_STRIDE != 0,
                )
            )
            self.usages.append(usage)
            fail_prefix.append(fail_prefix[-1] + (1 if failure else 0))
            for j, value in enumerate(
                (
                    usage.input_tokens,
                    usage.cached_tokens,
                    usage.output_tokens,
                    usage.reasoning_tokens,
                )
            ):
                usage_prefix[j].append(usage_prefix[j][-1] + value)
        self.fail_prefix = fail_prefix
        self.usage_prefix = usage_prefix
        self._sizes: dict[tuple[str, int, str | None], int] = {}

    @staticmethod
    def _exemplar(custom_id: str) -> int:
        return int(hex_digest("exemplar:" + custom_id, 4), 16) % TEMPLATES

    def _own_failure(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]] | None:
        required = {
            "/v1/chat/completions": "messages",
            "/v1/responses": "input",
            "/v1/embeddings": "input",
            "/v1/completions": "prompt",
            "/v1/moderations": "input",
            "/v1/images/generations": "prompt",
            "/v1/images/edits": "prompt",
            "/v1/videos": "prompt",
        }.get(self.endpoint)
        if required and required not in body:
            return missing_parameter_error(required)
        return None

    def failed_among(self, n: int) -> int:
        return self.fail_prefix[min(n, self.total)]

    def usage_among(self, n: int) -> LineUsage:
        n = min(n, self.total)
        return LineUsage(*(prefix[n] for prefix in self.usage_prefix))

    def _render(self, i: int, created: int) -> str:
        request = self.requests[i]
        ids = line_ids(self.endpoint, f"{self.batch_id}:{i}")
        failure = self.fails[i]
        if failure is not None:
            status, error = failure
            line = output_line(ids["BREQ"], request.custom_id, status, ids["RID"], {"error": error})
        else:
            k = self._exemplar(request.custom_id)
            answer = response_body(self.endpoint, self.model, request.body, k, self.usages[i], ids, created)
            line = output_line(ids["BREQ"], request.custom_id, 200, ids["RID"], answer)
        return dumps(line) + "\n"

    def output_lines(self, n: int, finished_at: Callable[[int], int]) -> Iterator[str]:
        for text in self._output_texts(n, finished_at):
            yield expand_embeddings(text)

    def _output_texts(self, n: int, finished_at: Callable[[int], int]) -> Iterator[str]:
        for i in range(min(n, self.total)):
            if self.fails[i] is None:
                yield self._render(i, finished_at(i))

    def error_lines(self, n: int, unfinished: str | None, finished_at: Callable[[int], int]) -> Iterator[str]:
        for i in range(min(n, self.total)):
            if self.fails[i] is not None:
                yield self._render(i, finished_at(i))
        if unfinished:
            for i in range(n, self.total):
                ids = line_ids(self.endpoint, f"{self.batch_id}:{i}")
                line = unfinished_line(ids["BREQ"], self.requests[i].custom_id, unfinished)
                yield dumps(line) + "\n"

    def output_size(self, n: int) -> int:
        key = ("output", n, None)
        if key not in self._sizes:
            # Any ten-digit time will do: every field of a line has a fixed width.
            texts = self._output_texts(n, lambda i: 1_700_000_000)
            self._sizes[key] = sum(expanded_size(text) for text in texts)
        return self._sizes[key]

    def error_size(self, n: int, unfinished: str | None) -> int:
        key = ("error", n, unfinished)
        if key not in self._sizes:
            lines = self.error_lines(n, unfinished, lambda i: 1_700_000_000)
            self._sizes[key] = sum(expanded_size(line) for line in lines)
        return self._sizes[key]


VALIDATION_SCENARIOS: tuple[str, ...] = (
    "invalid_json_line",
    "missing_custom_id",
    "missing_model",
    "mismatched_model",
    "invalid_url",
    "duplicate_custom_id",
    "token_limit_exceeded",
)

_OTHER_MODEL: dict[str, str] = {
    "gpt-4o-mini": "gpt-4o",
    "gpt-4.1": "gpt-4.1-mini",
    "gpt-4.1-mini": "gpt-4.1",
    "o4-mini": "o3-mini",
    "gpt-5-mini": "gpt-5",
    "text-embedding-3-small": "text-embedding-3-large",
    "text-embedding-3-large": "text-embedding-3-small",
}


def other_model(model: str) -> str:
    other = _OTHER_MODEL.get(model, "gpt-4o")
    return other if other != model else "gpt-4o-mini"


def seeded_validation_failure(
    scenario: str, total: int, model: str, rng: random.Random
) -> tuple[tuple[int, ...], list[dict[str, Any]]]:
    """Which lines of a seeded input file are broken, and the errors validation reports.

    The errors are exactly what `validate_input` reports for the file SeededRequests renders
    with these lines broken; line 1 is never broken so it fixes the model and a custom_id.
    """
    if scenario == "token_limit_exceeded" or total < 2:
        return (), [token_limit_error(model)]
    count = min(total - 1, rng.choice((1, 1, 1, 2, 3)))
    lines = tuple(sorted(rng.sample(range(1, total), count)))
    errors: list[dict[str, Any]] = []
    for i in lines:
        if scenario == "invalid_json_line":
            errors.append(invalid_json_error(i + 1))
        elif scenario == "missing_custom_id":
            errors.append(missing_required_error("custom_id", i + 1))
        elif scenario == "missing_model":
            errors.append(missing_required_error("body.model", i + 1))
        elif scenario == "mismatched_model":
            errors.append(mismatched_model_error(other_model(model), model, i + 1))
        elif scenario == "invalid_url":
            errors.append(invalid_url_error(i + 1))
        elif scenario == "duplicate_custom_id":
            errors.append(duplicate_custom_id_error(i + 1))
        else:
            raise ValueError(f"unknown validation scenario {scenario!r}")
    return lines, errors
