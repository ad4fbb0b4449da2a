"""Fixtures of the API client's tests. Scoped to this package on purpose: `client` here is a
BatchAPIClient and shadows pytest-django's `client` (Django's test client), which the rest of
tests/unit still needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from batches.api.client import BatchAPIClient
from tests.unit.api_client.support import BASE_URL, make_client


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> Iterator[BatchAPIClient]:
    with make_client(sleeps) as instance:
        yield instance


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router
