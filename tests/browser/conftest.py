"""Playwright on the system's Chromium; every test here is marked `browser`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.processes import start_beat, start_worker  # noqa: F401 (fixtures of the stack test)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: mark only this folder's.
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.browser)


SCREENSHOT_DIR = REPO / "var" / "screenshots"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    for candidate in (
        os.environ.get("CHROMIUM_PATH"),
        shutil.which("chromium"),
        "/usr/bin/chromium",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("Chromium is not installed; `make test` installs it from the system packages")


# One Chromium per module, not per session: Playwright's sync API runs an event loop in this thread
# while it is open, and pytest-django runs other transactional tests between browser modules, where
# Django's test client then cannot call an async view (the events stream: async_to_sync refuses to
# run inside a running loop). A launch costs about a second.
@pytest.fixture(scope="module")
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    # The ORM calls made by the tests themselves around the event loop are synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()
