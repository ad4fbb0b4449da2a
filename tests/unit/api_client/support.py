"""What the API client's tests build their exchanges from: payloads as the live API sends them, bodies that
stream in chunks or die part-way, and a client that records its sleeps instead of sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx

from batches.api.client import BatchAPIClient, ClientConfig

BASE_URL = "https://api.test/v1"
API_KEY = "sk-test-0123456789-SECRET"
CREATED = 1711471533
CREATED_DT = datetime(2024, 3, 26, 16, 45, 33, tzinfo=UTC)


def batch_json(batch_id: str = "batch_abc123", status: str = "in_progress", **overrides: Any):
    """A batch as the live API sends it, with any field overridden or removed (value ...)."""
    data: dict[str, Any] = {
        "id": batch_id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "model": "gpt-5-2025-08-07",
        "errors": None,
        "input_file_id": "file-in123",
        "completion_window": "24h",
        "status": status,
        "output_file_id": None,
        "error_file_id": None,
        "created_at": CREATED,
        "in_progress_at": CREATED + 5,
        "expires_at": CREATED + 86400,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 100, "completed": 40, "failed": 2},
        "usage": None,
        "metadata": {"customer_id": "user_123", "batch_description": "Nightly eval job"},
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not ...}


def file_json(file_id: str = "file-abc123", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": file_id,
        "object": "file",
        "bytes": 120000,
        "created_at": CREATED,
        "expires_at": CREATED + 2592000,
        "filename": "input.jsonl",
        "purpose": "batch",
        "status": "processed",
        "status_details": None,
    }
    data.update(overrides)
    return data


def list_json(*items: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    return {
        "object": "list",
        "data": list(items),
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def error_response(status: int, message: str = "nope", **headers: str) -> httpx.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None}}
    return httpx.Response(status, json=body, headers=headers)


class CutOffStream(httpx.SyncByteStream):
    """A body that dies part-way, as when a proxy drops the connection."""

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"id": "batch_'
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


class ChunkedStream(httpx.SyncByteStream):
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


def make_client(sleeps: list[float] | None = None, **config: Any) -> BatchAPIClient:
    config.setdefault("base_url", BASE_URL)
    config.setdefault("api_key", API_KEY)
    return BatchAPIClient(ClientConfig(**config), sleep=(sleeps if sleeps is not None else []).append)
