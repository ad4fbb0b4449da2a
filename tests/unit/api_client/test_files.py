"""The API client's file calls: upload, retrieve, list, and content streamed in chunks or cut off."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import httpx
import pytest

from batches.api.errors import MalformedResponseError, NotFoundError
from batches.api.objects import FileObject
from tests.unit.api_client.support import (
    CREATED_DT,
    ChunkedStream,
    CutOffStream,
    error_response,
    file_json,
    list_json,
)


def test_it_uploads_a_file_as_multipart_with_purpose_batch(api, client):
    route = api.post("/files").respond(json=file_json())

    uploaded = client.upload_file(filename="input.jsonl", content=b'{"custom_id": "1"}\n')

    request = route.calls.last.request
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = request.content
    assert b'name="purpose"\r\n\r\nbatch\r\n' in body
    assert b'name="file"; filename="input.jsonl"' in body
    assert b'{"custom_id": "1"}\n' in body
    assert isinstance(uploaded, FileObject)
    assert uploaded.id == "file-abc123"


def test_it_uploads_a_file_object_again_in_full_when_retrying(api, client, sleeps):
    route = api.post("/files").mock(side_effect=[httpx.Response(500), httpx.Response(200, json=file_json())])
    content = io.BytesIO(b'{"custom_id": "a"}\n{"custom_id": "b"}\n')

    client.upload_file(filename="in.jsonl", content=content, purpose="batch")

    assert route.call_count == 2
    for call in route.calls:
        assert b'{"custom_id": "a"}\n{"custom_id": "b"}\n' in call.request.content
    assert len(sleeps) == 1


def test_it_retrieves_a_file(api, client):
    api.get("/files/file-abc123").respond(json=file_json(extra_field=1))

    file = client.retrieve_file("file-abc123")

    assert file.id == "file-abc123"
    assert file.object == "file"
    assert file.bytes == 120000
    assert file.created_at == CREATED_DT
    assert file.expires_at == CREATED_DT + timedelta(days=30)
    assert (file.filename, file.purpose, file.status, file.status_details) == (
        "input.jsonl",
        "batch",
        "processed",
        None,
    )
    assert file.raw["extra_field"] == 1


def test_a_file_with_nulls_and_missing_fields_still_parses():
    file = FileObject.from_json({"id": "file-1", "bytes": None, "created_at": "garbage"})

    assert file.id == "file-1"
    assert file.object == "file"
    assert file.bytes is None
    assert file.created_at is None
    assert file.filename is None


def test_it_lists_files_by_purpose_across_pages(api, client):
    route = api.get("/files").mock(
        side_effect=[
            httpx.Response(200, json=list_json(file_json("f1"), has_more=True)),
            httpx.Response(200, json=list_json(file_json("f2"), has_more=False)),
        ]
    )

    ids = [f.id for f in client.list_files(purpose="batch", limit=1)]

    assert ids == ["f1", "f2"]
    assert dict(route.calls[0].request.url.params) == {"limit": "1", "purpose": "batch"}
    assert dict(route.calls[1].request.url.params) == {
        "limit": "1",
        "purpose": "batch",
        "after": "f1",
    }


def test_it_streams_file_content_in_chunks(api, client):
    content = b"".join(b'{"custom_id": "%d"}\n' % i for i in range(50))
    api.get("/files/file-out/content").respond(content=content)

    with client.stream_file_content("file-out", chunk_size=64) as chunks:
        received = list(chunks)

    assert len(received) > 1
    assert all(len(chunk) <= 64 for chunk in received)
    assert b"".join(received) == content


def test_it_yields_jsonl_lines_split_across_chunk_boundaries(api, client):
    lines = [json.dumps({"custom_id": f"req-{i}", "pad": "x" * 40}).encode() for i in range(3000)]
    body = b"\r\n".join(lines) + b"\n\n"
    # Odd network chunks so that lines straddle the 64 KiB read boundaries.
    api.get("/files/file-out/content").respond(
        stream=ChunkedStream(*(body[i : i + 7001] for i in range(0, len(body), 7001)))
    )

    assert list(client.iter_file_lines("file-out")) == lines


def test_a_file_download_cut_off_mid_stream_raises_malformed_response(api, client):
    api.get("/files/file-out/content").respond(stream=CutOffStream())

    with (
        pytest.raises(MalformedResponseError, match="cut off"),
        client.stream_file_content("file-out") as chunks,
    ):
        list(chunks)


def test_a_file_download_is_retried_when_it_fails_before_streaming(api, client, sleeps):
    route = api.get("/files/file-out/content").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, content=b"line\n")]
    )

    assert list(client.iter_file_lines("file-out")) == [b"line"]
    assert route.call_count == 2


def test_a_missing_file_download_raises_not_found(api, client):
    api.get("/files/nope/content").mock(return_value=error_response(404, "No such file"))

    with pytest.raises(NotFoundError, match="No such file"), client.stream_file_content("nope"):
        pass
