"""The requests of a batch and the result files they produce: seeded ones, and uploaded ones.

Seeded batches can hold up to 50,000 requests and there can be 10,000 of them, so their input,
output and error files are never materialised: every line is rendered from a template whose
variable parts have a fixed width, and each batch's requests follow a periodic pattern (template,
failure, cache hit) with a per-batch phase. That makes a file's exact size, the number of failed
requests among the first n and the token usage of the first n computable in O(1), which is what
lets `bytes`, `request_counts` and `usage` stay truthful without reading anything.

Uploaded batches are rendered line by line from the uploaded requests instead.
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from simulator.content import (
    ID_WIDTHS,
    LINE_ERRORS,
    UNFINISHED_MESSAGES,
    LineUsage,
    error_kinds,
    line_ids,
    missing_parameter_error,
    object_id_width,
    output_line,
    request_body,
    response_body,
    unfinished_line,
    usage_for_body,
)
from simulator.templates import LineTemplate, N, S, dumps, expand_embeddings, expanded_size, hex_digest
from simulator.validation import ParsedRequest, other_model

PERIOD = 200  # lines; a multiple of the template count and of the cache-miss stride
TEMPLATES = 8
CACHE_MISS_STRIDE = 20  # one request in 20 misses the prompt cache (the first of each run)


def fail_positions(level: int, salt: str) -> frozenset[int]:
    """`level` failing positions out of every PERIOD requests, scattered, never evenly."""
    if level <= 0:
        return frozenset()
    rng = random.Random(f"fail:{salt}:{level}")
    return frozenset(rng.sample(range(PERIOD), min(level, PERIOD)))


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
