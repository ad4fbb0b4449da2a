"""What the lines the simulated Batch API reads and writes hold, in the real formats.

The data tables (endpoints, model snapshots, exemplar prompts and answers, the errors a request
can meet) and the bodies built from them: a request's `body`, its token usage, the endpoint's
response, and the output and error lines around them. Bodies may hold template holes (see
`templates`); `sources` turns them into whole files.
"""

from __future__ import annotations

import base64
import math
import random
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simulator.templates import base62_digest, dumps, embedding_hole, hex_digest

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


def snapshot_of(model: str) -> str:
    return MODEL_SNAPSHOTS.get(model, model)


def is_reasoning_model(model: str) -> bool:
    return model.startswith(("o1", "o3", "o4", "gpt-5"))


def estimate_tokens(text: str) -> int:
    # About four characters per token for English text, as OpenAI's own rule of thumb says.
    return max(1, math.ceil(len(text) / 4))


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
