"""Checking an input file the way the Batch API will, before anything is uploaded, and the
metadata typed into the create form. Reads the file once as a stream: memory stays the same whatever
the file's size.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from batches.jsonl import split_lines
from batches.results.summaries import clip, compact

# What the Batch API accepts (the contract's enum), and its limits on an input file.
BATCH_ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
COMPLETION_WINDOWS = ("24h",)
MAX_LINES = 50_000
MAX_BYTES = 200 * 1024 * 1024
MAX_EMBEDDING_INPUTS = 50_000
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
# The metadata key the dashboard sets itself on every batch it creates: a form may not set it.
CREATED_BY_KEY = "created_by"

# Only the first problems are listed (the API itself reports at most 100); the rest are counted per
# kind, so a file with a problem on every line costs a page of constant size.
MAX_LISTED_PROBLEMS = 100
# A line longer than this is reported, not read: it bounds what one line can cost (its bytes, its
# text and its parsed form, about 4x this in all). The API's own cap on a request's payload is larger
# for image inputs, but such lines are rare in batch files and refusing one says why.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Duplicate custom_ids are found through a dict of 64-bit hashes of the ids seen, each with its first
# line. A file with more than MAX_LINES requests is refused anyway, so past that many ids new ones are
# not remembered (later repeats of remembered ids are still found): about 5 MB at most, whatever the
# file. Two different ids share a hash with odds of about 1 in 10**10 for a full file; the hash is
# keyed per process, so even that would not repeat on a second try.
MAX_REMEMBERED_IDS = MAX_LINES
# Enough of the file's start to tell UTF-16 and UTF-32 (NUL bytes between ASCII letters) from UTF-8.
SNIFF_BYTES = 4096
UTF8_BOM = b"\xef\xbb\xbf"

# Each kind of problem a line can have, with the words the page counts it under.
PROBLEM_KINDS: dict[str, str] = {
    "too_long": "line too long to check",
    "empty": "empty line",
    "utf8": "not valid UTF-8",
    "json": "not valid JSON",
    "object": "not a JSON object",
    "custom_id": "custom_id missing or not a string",
    "duplicate": "custom_id used again",
    "method": "method is not POST",
    "url": "url is not the endpoint",
    "body": "body missing or not an object",
    "model": "body.model missing",
    "mixed_model": "more than one model",
}


@dataclass
class FirstModel:
    """The model the file's first line that names one asks for, and that line: a batch uses one
    model, so every later line is held to it."""

    name: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class LineProblem:
    line: int | None  # None: the file as a whole
    reason: str
    kind: str = ""

    def __str__(self) -> str:
        return f"Line {self.line}: {self.reason}" if self.line is not None else self.reason


@dataclass
class ValidationReport:
    """What is wrong with a file, in constant memory: problems of the file as a whole, the first
    MAX_LISTED_PROBLEMS problems of its lines, and how many problems of each kind there are."""

    file_problems: list[LineProblem] = field(default_factory=list)
    line_problems: list[LineProblem] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    bad_lines: int = 0
    lines: int = 0
    inputs: int = 0
    model: str | None = None
    # For the cost estimate (spend.estimate), gathered on the same pass: the characters of the
    # requests' text, the sum of their output limits, and how many requests set none.
    text_chars: int = 0
    max_output_tokens: int = 0
    unbounded_outputs: int = 0

    @property
    def problems(self) -> list[LineProblem]:
        """What the page lists: the file's problems first, then the first problems of its lines."""
        return self.file_problems + self.line_problems

    @property
    def problem_count(self) -> int:
        return sum(self.counts.values())

    @property
    def unlisted(self) -> int:
        return self.problem_count - len(self.line_problems)

    @property
    def kinds(self) -> list[tuple[str, int]]:
        return [(PROBLEM_KINDS.get(kind, kind), count) for kind, count in self.counts.most_common()]

    @property
    def ok(self) -> bool:
        return not self.file_problems and not self.counts

    def add(self, number: int, kind: str, reason: str, repeat: int = 1) -> None:
        """`repeat` lines from `number` on have this problem."""
        self.counts[kind] += repeat
        room = MAX_LISTED_PROBLEMS - len(self.line_problems)
        if room > 0:
            for offset in range(min(room, repeat)):
                self.line_problems.append(LineProblem(number + offset, reason, kind))


def _skip(chunks: Iterable[bytes], count: int) -> Iterator[bytes]:
    """The stream without its first `count` bytes, however small its chunks."""
    for chunk in chunks:
        if count:
            dropped = min(count, len(chunk))
            chunk, count = chunk[dropped:], count - dropped
        if chunk:
            yield chunk


def _sniff(chunks: Iterator[bytes]) -> tuple[bytes, list[bytes]]:
    """The first SNIFF_BYTES of the stream, and the chunks read to get them (to be read again)."""
    taken: list[bytes] = []
    size = 0
    for chunk in chunks:
        taken.append(chunk)
        size += len(chunk)
        if size >= SNIFF_BYTES:
            break
    head = b"".join(chunk[:SNIFF_BYTES] for chunk in taken)[:SNIFF_BYTES]
    return head, taken


def _encoding_problem(head: bytes) -> str:
    """Why the file is not UTF-8 as a whole, or "" if it may be."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return (
            "The file is UTF-16 or UTF-32 (it starts with a byte order mark FF FE or FE FF). The Batch "
            "API reads UTF-8 only: save the file as UTF-8."
        )
    if b"\x00" in head:
        return (
            "The file holds NUL bytes, as UTF-16 and UTF-32 files do. The Batch API reads UTF-8 only: "
            "save the file as UTF-8."
        )
    return ""


def _embedding_inputs(body: dict[str, Any]) -> int:
    value = body.get("input")
    if isinstance(value, list) and value and not all(isinstance(v, int) for v in value):
        return len(value)  # a list of strings or of token arrays: one input each
    return 1


def _line_problems(
    item: Any, endpoint: str, number: int, first_ids: dict[int, int], model: FirstModel, say_why: bool
) -> list[tuple[str, str]]:
    """(kind, reason) of each problem of a parsed line; the reasons are "" unless `say_why` (once
    the first problems are listed, the rest are only counted, so their words are not worth making)."""
    if not isinstance(item, dict):
        return [("object", "not a JSON object")]
    problems: list[tuple[str, str]] = []
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        problems.append(("custom_id", "custom_id is missing or not a non-empty string"))
    else:
        key = hash(custom_id)
        first = first_ids.get(key)
        if first is not None:
            problems.append(
                (
                    "duplicate",
                    f"custom_id {clip(custom_id, 80)!r} is used again (first on line {first})"
                    if say_why
                    else "",
                )
            )
        elif len(first_ids) < MAX_REMEMBERED_IDS:
            first_ids[key] = number
    method = item.get("method")
    if method != "POST":
        reason = f'method must be "POST", not {clip(compact(method), 40)}' if say_why else ""
        problems.append(("method", reason))
    url = item.get("url")
    if url != endpoint:
        problems.append(
            (
                "url",
                f"url {clip(compact(url), 60)} does not match the endpoint {endpoint}" if say_why else "",
            )
        )
    body = item.get("body")
    if not isinstance(body, dict):
        problems.append(("body", "body is missing or not a JSON object"))
        return problems
    body_model = body.get("model")
    if not isinstance(body_model, str) or not body_model:
        problems.append(("model", "body.model is missing"))
    elif model.name is None:
        model.name, model.line = body_model, number
    elif body_model != model.name:
        # The API fails the whole batch for this, so say it now.
        problems.append(
            (
                "mixed_model",
                f"body.model {clip(body_model, 60)!r} differs from {clip(model.name, 60)!r} on line "
                f"{model.line}: a batch uses one model"
                if say_why
                else "",
            )
        )
    return problems


# The request fields that cap a response's length, by the endpoints' own names.
OUTPUT_LIMIT_FIELDS = ("max_output_tokens", "max_completion_tokens", "max_tokens")
# Endpoints whose responses are billed as output tokens (an embedding or a moderation has none).
_OUTPUT_ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/completions")


def _text_chars(value: Any, depth: int = 0) -> int:
    """Characters of the strings in a request body: what its input tokens are estimated from."""
    if isinstance(value, str):
        return len(value)
    if depth > 20:
        return 0
    if isinstance(value, dict):
        return sum(_text_chars(v, depth + 1) for k, v in value.items() if k != "model")
    if isinstance(value, list):
        return sum(_text_chars(v, depth + 1) for v in value)
    return 0


def _count_for_estimate(report: ValidationReport, body: dict[str, Any], endpoint: str) -> None:
    report.text_chars += _text_chars(body)
    if endpoint not in _OUTPUT_ENDPOINTS:
        return
    limit = next((body[name] for name in OUTPUT_LIMIT_FIELDS if name in body), None)
    if type(limit) is int and 0 < limit <= 10**7:
        report.max_output_tokens += limit
    else:
        report.unbounded_outputs += 1


def _parse(raw: bytes) -> tuple[Any, tuple[str, str] | None]:
    """The line's JSON value, or the (kind, reason) of why it has none."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, ("utf8", f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1})")
    try:
        return json.loads(text), None
    except ValueError as error:
        detail = f" ({error.msg}, column {error.colno})" if isinstance(error, json.JSONDecodeError) else ""
        return None, ("json", f"not valid JSON{detail}")
    except RecursionError:
        return None, ("json", "not valid JSON (nested too deeply)")


def validate_upload(chunks: Iterable[bytes], endpoint: str, size: int | None = None) -> ValidationReport:
    """Check an input file the way the Batch API will, reading it once as a stream: memory stays the
    same whatever the file's size (MAX_LINE_BYTES, MAX_LISTED_PROBLEMS, MAX_REMEMBERED_IDS bound it)."""
    report = ValidationReport()
    if endpoint not in BATCH_ENDPOINTS:
        report.file_problems.append(LineProblem(None, f"Unknown endpoint {endpoint!r}."))
        return report
    if size is not None and size > MAX_BYTES:
        report.file_problems.append(
            LineProblem(
                None, f"The file is {size:,} bytes; a batch input file may hold at most {MAX_BYTES:,}."
            )
        )
        return report
    source = iter(chunks)
    head, taken = _sniff(source)
    encoding = _encoding_problem(head)
    if encoding:
        # Every line would be garbage: one clear message instead.
        report.file_problems.append(LineProblem(None, encoding))
        return report
    stream: Iterable[bytes] = chain(taken, source)
    if head.startswith(UTF8_BOM):
        report.file_problems.append(
            LineProblem(
                None,
                "The file starts with a UTF-8 byte order mark (BOM), which the Batch API does not accept: "
                "save it as UTF-8 without a BOM (often called plain UTF-8).",
            )
        )
        stream = _skip(stream, len(UTF8_BOM))  # so that line 1 is judged on its own merits

    total = 0
    over_size = False

    def counted(chunks: Iterable[bytes]) -> Iterator[bytes]:
        nonlocal total, over_size
        for chunk in chunks:
            total += len(chunk)
            if total > MAX_BYTES:
                over_size = True
                return  # the file is refused anyway; reading on would only cost time
            yield chunk

    first_ids: dict[int, int] = {}
    model = FirstModel()
    number = 0
    for raw, repeat in split_lines(counted(stream), MAX_LINE_BYTES):
        if raw is None:
            number += 1
            report.lines += 1
            report.bad_lines += 1
            report.add(
                number, "too_long", f"longer than {MAX_LINE_BYTES:,} bytes, the most the dashboard checks"
            )
            continue
        if not raw.strip():
            # The final newline ends the last line; any other empty line fails validation at the API.
            report.add(number + 1, "empty", "empty line", repeat)
            report.bad_lines += repeat
            number += repeat
            continue
        number += 1
        report.lines += 1
        item, failure = _parse(raw)
        say_why = len(report.line_problems) < MAX_LISTED_PROBLEMS
        problems = [failure] if failure else _line_problems(item, endpoint, number, first_ids, model, say_why)
        for kind, reason in problems:
            report.add(number, kind, reason)
        if problems:
            report.bad_lines += 1
        if failure:
            continue
        if endpoint == "/v1/embeddings" and isinstance(item, dict) and isinstance(item.get("body"), dict):
            report.inputs += _embedding_inputs(item["body"])
        else:
            report.inputs += 1
        if isinstance(item, dict) and isinstance(item.get("body"), dict):
            _count_for_estimate(report, item["body"], endpoint)
    report.model = model.name
    if over_size:
        report.file_problems.insert(
            0, LineProblem(None, f"The file holds more than {MAX_BYTES:,} bytes; it was not read to its end.")
        )
    if report.lines == 0 and report.ok:
        report.file_problems.append(LineProblem(None, "The file is empty."))
    if report.lines > MAX_LINES:
        report.file_problems.insert(
            0,
            LineProblem(
                None, f"The file holds {report.lines:,} requests; a batch may hold at most {MAX_LINES:,}."
            ),
        )
    if endpoint == "/v1/embeddings" and report.inputs > MAX_EMBEDDING_INPUTS:
        report.file_problems.insert(
            0,
            LineProblem(
                None,
                f"The file holds {report.inputs:,} embedding inputs in all; an embeddings batch may hold at "
                f"most {MAX_EMBEDDING_INPUTS:,}.",
            ),
        )
    return report


def parse_metadata(
    text: str, *, reserved: Iterable[str] = (CREATED_BY_KEY,)
) -> tuple[dict[str, str], list[str]]:
    """`key=value` lines from a form into metadata, with the API's limits checked up front."""
    metadata: dict[str, str] = {}
    errors: list[str] = []
    reserved = set(reserved)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            errors.append(f"Line {number}: write key=value.")
        elif key in reserved:
            errors.append(f"Line {number}: {key} is set by the dashboard.")
        elif key in metadata:
            errors.append(f"Line {number}: the key {clip(key, 40)!r} is given twice.")
        elif len(key) > MAX_METADATA_KEY_CHARS:
            errors.append(f"Line {number}: keys may be at most {MAX_METADATA_KEY_CHARS} characters.")
        elif len(value) > MAX_METADATA_VALUE_CHARS:
            errors.append(f"Line {number}: values may be at most {MAX_METADATA_VALUE_CHARS} characters.")
        else:
            metadata[key] = value
    room = MAX_METADATA_KEYS - len(reserved)
    if len(metadata) > room:
        errors.append(f"At most {room} metadata keys (the dashboard adds {', '.join(sorted(reserved))}).")
    return metadata, errors
