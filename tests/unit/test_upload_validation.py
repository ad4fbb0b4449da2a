"""Validating an uploaded JSONL file: a stream in bounded memory, counts per kind of problem and only
the first problems listed, and UTF-8 as the Batch API reads it."""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import Iterator

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from batches.jsonl import split_lines
from batches.results import validation
from tests.support.factories import make_connection, make_user

CHAT = "/v1/chat/completions"


def line(custom_id: str, **fields) -> bytes:
    item = {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hi {custom_id}"}]},
        **fields,
    }
    return json.dumps(item).encode() + b"\n"


def in_chunks(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# --------------------------------------------------------------------------- counts and the first 100


def test_a_file_of_blank_lines_is_counted_and_only_its_first_hundred_problems_are_listed():
    report = validation.validate_upload(in_chunks(b"\n" * 200_000), CHAT)

    assert len(report.problems) == 100
    assert [p.line for p in report.problems] == list(range(1, 101))
    assert all(p.reason == "empty line" for p in report.problems)
    assert report.counts == {"empty": 200_000}
    assert report.problem_count == 200_000 and report.bad_lines == 200_000
    assert report.unlisted == 199_900
    assert report.kinds == [("empty line", 200_000)]
    assert not report.ok


def test_counts_are_kept_per_kind_of_problem_and_listed_in_file_order():
    lines = [
        line("a"),  # 1
        b"\n",  # 2: empty
        b"{not json\n",  # 3
        line("a"),  # 4: the custom_id again
        line("m", method="GET", url="/v1/embeddings"),  # 5: two problems
        b"[1, 2]\n",  # 6
        line("b"),  # 7
    ]
    report = validation.validate_upload([b"".join(lines)], CHAT)
    assert report.counts == {"empty": 1, "json": 1, "duplicate": 1, "method": 1, "url": 1, "object": 1}
    assert [(p.line, p.kind) for p in report.problems] == [
        (2, "empty"),
        (3, "json"),
        (4, "duplicate"),
        (5, "method"),
        (5, "url"),
        (6, "object"),
    ]
    assert "first on line 1" in report.problems[2].reason
    assert report.bad_lines == 5 and report.unlisted == 0


def test_the_page_for_a_file_full_of_problems_stays_small(client, db):
    connection = make_connection("uploads")
    client.force_login(make_user("olga", "operator"))
    upload = SimpleUploadedFile("blank.jsonl", b"\n" * 200_000, content_type="application/jsonl")
    response = client.post(
        "/batches/new/",
        {"connection": connection.pk, "endpoint": CHAT, "completion_window": "24h", "file": upload},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert len(response.content) < 200_000, f"the page is {len(response.content):,} bytes"
    listed = re.search(r'<ol class="line-problems">(.*?)</ol>', body, re.S)
    assert listed is not None and listed.group(1).count("<li>") == 100
    assert "<strong>Line 100</strong>" in body and "<strong>Line 101</strong>" not in body
    assert "199,900 more" in body
    kinds = re.search(r'<table class="plain problem-kinds">(.*?)</table>', body, re.S)
    assert kinds is not None and "empty line" in kinds.group(1) and "200,000" in kinds.group(1)
    assert "200,000 invalid lines; nothing was uploaded" in body


# --------------------------------------------------------------------------- bounded memory


def hostile_stream(total_bytes: int) -> Iterator[bytes]:
    """Lines with several problems each and a fresh custom_id each, generated as they are read, so
    that the input itself never sits in memory."""
    number, sent, chunk = 0, 0, []
    while sent < total_bytes:
        number += 1
        raw = b'{"custom_id": "id-%040d", "method": "GET", "url": "/x", "body": 1}\n' % number
        chunk.append(raw)
        sent += len(raw)
        if len(chunk) == 1000:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


@pytest.mark.slow
def test_validating_a_large_stream_keeps_memory_bounded():
    size = 20 * 1024 * 1024
    tracemalloc.start()
    try:
        report = validation.validate_upload(hostile_stream(size), CHAT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"tracemalloc peak {peak / 2**20:.1f} MiB"
    assert report.lines > 200_000
    assert report.counts["method"] == report.lines and report.counts["body"] == report.lines
    assert len(report.problems) == 1 + 100  # the line limit's, then the first 100 line problems


def test_a_line_longer_than_the_limit_is_a_problem_and_is_never_kept(monkeypatch):
    monkeypatch.setattr(validation, "MAX_LINE_BYTES", 10_000)
    long_line = b'{"custom_id": "' + b"x" * 50_000 + b'"}\n'
    report = validation.validate_upload(in_chunks(line("a") + long_line + line("b"), 1000), CHAT)
    assert [(p.line, p.kind) for p in report.problems] == [(2, "too_long")]
    assert "longer than" in report.problems[0].reason
    assert report.lines == 3


def test_duplicate_custom_ids_are_found_far_apart_and_the_ids_kept_are_bounded():
    lines = [line(f"req-{n}") for n in range(3000)] + [line("req-7")]
    report = validation.validate_upload(in_chunks(b"".join(lines), 4096), CHAT)
    assert [(p.line, p.kind) for p in report.problems] == [(3001, "duplicate")]
    assert "first on line 8" in report.problems[0].reason
    # Past MAX_LINES requests the file is refused anyway; new ids are no longer remembered.
    assert validation.MAX_REMEMBERED_IDS == validation.MAX_LINES


# --------------------------------------------------------------------------- UTF-8


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_utf16_or_utf32_file_is_refused_naming_utf8(encoding):
    text = (line("a") + line("b")).decode()
    report = validation.validate_upload([text.encode(encoding)], CHAT)
    assert not report.ok
    message = str(report.problems[0])
    assert "UTF-8" in message and ("UTF-16" in message or "NUL" in message)
    assert report.problems[0].line is None
    assert len(report.problems) == 1  # not one garbled problem per line


def test_a_utf8_byte_order_mark_is_refused_with_a_message_and_the_rest_is_still_checked():
    report = validation.validate_upload([b"\xef\xbb\xbf" + line("a") + b"\n" + line("b")], CHAT)
    assert not report.ok
    assert report.problems[0].line is None
    assert "byte order mark" in report.problems[0].reason and "UTF-8" in report.problems[0].reason
    # Line 1 is judged without the mark, so only the real problem of the file follows.
    assert [(p.line, p.kind) for p in report.problems[1:]] == [(2, "empty")]


def test_a_utf8_byte_order_mark_in_one_byte_chunks_is_found_too():
    report = validation.validate_upload(in_chunks(b"\xef\xbb\xbf" + line("a"), 1), CHAT)
    assert [p.line for p in report.problems] == [None]
    assert report.lines == 1


def test_invalid_utf8_on_a_line_is_a_problem_of_that_line():
    bad = line("b").replace(b"hi b", b"hi \xff\xfe b")
    report = validation.validate_upload([line("a") + bad + line("c")], CHAT)
    assert [(p.line, p.kind) for p in report.problems] == [(2, "utf8")]
    assert "UTF-8" in report.problems[0].reason


def test_json_nested_too_deeply_is_a_problem_not_a_crash():
    deep = b"[" * 100_000 + b"]" * 100_000 + b"\n"
    report = validation.validate_upload([line("a") + deep], CHAT)
    assert [(p.line, p.kind) for p in report.problems] == [(2, "json")]


def test_a_utf16_upload_is_refused_on_the_page_and_nothing_is_uploaded(client, db):
    connection = make_connection("uploads")
    client.force_login(make_user("olga", "operator"))
    content = (line("a") + line("b")).decode().encode("utf-16")
    upload = SimpleUploadedFile("wide.jsonl", content, content_type="application/jsonl")
    response = client.post(
        "/batches/new/",
        {"connection": connection.pk, "endpoint": CHAT, "completion_window": "24h", "file": upload},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "UTF-16" in body and "UTF-8" in body and "nothing was uploaded" in body


# --------------------------------------------------------------------------- the line splitter


@given(
    data=st.binary(max_size=400).map(lambda raw: raw.translate(bytes.maketrans(b"\x00\x01", b"\n\n"))),
    chunk_size=st.integers(min_value=1, max_value=64),
    limit=st.integers(min_value=1, max_value=40),
)
@hypothesis_settings(max_examples=300, deadline=None)
def test_the_splitter_yields_the_lines_of_any_chunking_and_drops_only_overlong_ones(data, chunk_size, limit):
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()  # the final newline ends the last line
    expected = [line if len(line) <= limit else None for line in expected]
    got: list[bytes | None] = []
    for line, repeat in split_lines(in_chunks(data, chunk_size), limit):
        assert repeat == 1 or line == b""
        got.extend([line] * repeat)
    assert got == expected
