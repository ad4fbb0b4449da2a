"""Running an async function from a sync test, in any order of the suite."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from asgiref.sync import async_to_sync

T = TypeVar("T")


def run_async(function: Callable[[], Awaitable[T]]) -> T:
    """Runs `function` to completion in a thread of its own. In the main thread it cannot run once a
    browser test has run: Playwright's sync API leaves its event loop running there for the session,
    and async_to_sync refuses to start inside a running loop. Tests that touch the database through it
    need a transactional database (another thread has another connection)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(async_to_sync(function)).result()
