"""JSONL lines with fixed-width holes, so a line's size is known before its values are.

A template is one JSON line whose variable parts (ids, times, embedding vectors) are holes of a
known width; filling them renders the line, and adding their widths gives its size in bytes. The
deterministic digests that make ids of a fixed width live here too.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

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
