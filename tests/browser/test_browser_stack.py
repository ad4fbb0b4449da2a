"""The whole stack in a real browser: simulator -> Celery beat and worker -> database -> pages -> Chromium."""

import re

import pytest
from playwright.sync_api import expect

from batches.models import Batch, Connection
from tests.browser.conftest import SCREENSHOT_DIR
from tests.support.factories import make_user

# Browser tests (marked so by this folder) that also drive real Celery workers and beat.
pytestmark = pytest.mark.integration


@pytest.fixture
def stack(start_worker, start_beat, simulator, monkeypatch, live_server):
    monkeypatch.setenv("SIMULATOR_TEST_API_KEY", "sk-test")
    connection = Connection.objects.create(
        name="simulated",
        base_url=simulator.base_url,
        api_key_env="SIMULATOR_TEST_API_KEY",
        refresh_interval=1,
        full_sync_interval=30,
    )
    # Only the simulated connection: the environment one has no key in tests.
    Connection.objects.exclude(pk=connection.pk).update(enabled=False)
    # A refresh every second spends more than the default API budget (20 calls a minute).
    start_worker(SYNC_API_CALLS_PER_MINUTE="1000")
    start_beat(SYNC_API_CALLS_PER_MINUTE="1000")
    make_user("watcher", "operator", password="pw-watcher-1")
    return connection


def wait_for_batches(expected: int, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while Batch.objects.count() < expected:
        assert time.monotonic() < deadline, "the sync did not fill the database"
        time.sleep(0.2)


def sign_in(page, live_server, path: str = "/") -> None:
    page.goto(f"{live_server.url}/login/?next={path}")
    page.fill("input[name=username]", "watcher")
    page.fill("input[name=password]", "pw-watcher-1")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/(\?.*)?$"))


def poll_until(condition, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the page did not change in time"
        time.sleep(0.25)


def done_count(page, row) -> int:
    return int(row.locator(".n-completed").inner_text()) + int(row.locator(".n-failed").inner_text())


def test_a_running_batch_advances_on_screen_without_a_reload(page, live_server, stack, simulator):
    wait_for_batches(simulator.count())
    running = Batch.objects.filter(status="in_progress").order_by("-created_at").first()
    sign_in(page, live_server, "/?status=in_progress")
    row = page.locator(f"#batch-{running.pk}")
    before = done_count(page, row)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/")
    page.screenshot(path=str(SCREENSHOT_DIR / "list.png"))
    page.goto(f"{live_server.url}/?status=in_progress")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    simulator.advance(seconds=1200)
    # Done when the counts grew, or the batch finished and its row shows no counts to compare.
    poll_until(lambda: row.locator(".n-completed").count() == 0 or done_count(page, row) > before)
    assert navigations == []  # it moved by htmx swaps, not by a reload
    page.goto(f"{live_server.url}/batches/{running.pk}/")
    page.screenshot(path=str(SCREENSHOT_DIR / "detail.png"), full_page=True)


def test_cancel_and_confirm_turns_the_row_cancelling_then_cancelled(page, live_server, stack, simulator):
    wait_for_batches(simulator.count())
    running = Batch.objects.filter(status="in_progress").order_by("-created_at").first()
    sign_in(page, live_server, "/?status=in_progress")
    messages = []
    page.on("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    row = page.locator(f"#batch-{running.pk}")
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".badge").first).to_have_text("cancelling", timeout=15000)
    assert "partial results are kept" in messages[0]
    assert re.search(r"\d+ of \d+ requests are done", messages[0])
    simulator.advance(seconds=900)  # cancelling lasts up to 10 minutes
    expect(row.locator(".badge").first).to_have_text("cancelled", timeout=30000)
    assert page.locator(f"#batch-{running.pk}").get_attribute("data-live") is None  # out of the poll


def test_filters_and_pagination_change_the_url_and_survive_a_reload(page, live_server, stack, simulator):
    wait_for_batches(simulator.count())
    sign_in(page, live_server)
    page.click("a.status-card[data-status=completed]")  # the status cards are the status filter
    page.wait_for_url(re.compile(r"status=completed"))
    expect(page.locator("#batch-table tbody tr").first).to_be_visible()
    page.get_by_role("link", name="Next page »").click()
    page.wait_for_url(re.compile(r"cursor="))
    first_rows = page.locator("#batch-table tbody tr").evaluate_all("rows => rows.map(r => r.id)")
    assert first_rows
    page.reload()
    assert page.locator("a.status-card[data-status=completed]").get_attribute("aria-current") == "true"
    again = page.locator("#batch-table tbody tr").evaluate_all("rows => rows.map(r => r.id)")
    assert again == first_rows
    statuses = set(page.locator("#batch-table tbody .badge").all_inner_texts())
    assert statuses == {"completed"}
