"""Splitting a stream of JSONL bytes into lines, as the Batch API does: no Django, no I/O.

The one splitter: the API client reads result files with it, the upload validation checks input
files with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_NEWLINES = re.compile(rb"\n+")


def split_lines(chunks: Iterable[bytes], limit: int) -> Iterator[tuple[bytes | None, int]]:
    """Every line, split on \\n as the API does (not on a lone \\r), as (line, 1); a run of n empty
    lines as (b"", n), so a file of blank lines costs no Python work per line; a line longer than
    `limit` as (None, 1), its bytes skipped rather than kept."""
    pending = bytearray()
    overlong = False
    for chunk in chunks:
        start, size = 0, len(chunk)
        while start < size:
            # Only the new chunk is searched, so a long line costs linear time, not quadratic.
            end = chunk.find(b"\n", start)
            if end == -1:
                if not overlong:
                    if len(pending) + size - start > limit:
                        overlong = True
                        pending = bytearray()  # give the memory back, not just empty it
                    else:
                        pending += memoryview(chunk)[start:]
                break
            if overlong:
                yield None, 1
                overlong = False
            elif pending:
                if len(pending) + end - start > limit:
                    yield None, 1
                else:
                    pending += memoryview(chunk)[start:end]
                    yield bytes(pending), 1
                pending = bytearray()
            elif end == start:
                run = _NEWLINES.match(chunk, start)
                assert run is not None  # chunk[start] is a newline
                yield b"", run.end() - start
                start = run.end()
                continue
            elif end - start > limit:
                yield None, 1
            else:
                yield chunk[start:end], 1
            start = end + 1
    if overlong:
        yield None, 1
    elif pending:
        yield bytes(pending), 1
