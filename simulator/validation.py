"""The checks of an uploaded batch input file, and the validation failures of seeded batches.

The errors are the Batch API's own (`errors.data` of a failed batch); a seeded batch that fails
validation reports exactly what `validate_input` would report for the file it renders.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

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
