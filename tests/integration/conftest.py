"""Tests that start real processes (Celery workers and beat, the dashboard's own server) on the private
Redis; every test here is marked `integration`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import start_beat, start_worker  # noqa: F401 (fixtures of this level)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: mark only this folder's.
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.integration)
