"""Bulk cancel on the running stack: Chromium -> the pages -> a real Celery worker on Redis -> the
simulator, which counts every cancel it receives."""

import re

import pytest
from playwright.sync_api import expect

from batches.models import Batch
from tests.browser.test_browser_stack import (
    sign_in,
    stack,  # noqa: F401 (the running stack, a fixture)
    wait_for_batches,
)

pytestmark = pytest.mark.integration


def tab_until_focused(page, locator, limit: int = 300) -> None:
    """Press Tab until `locator` has the focus, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if locator.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached {locator}")


@pytest.mark.usefixtures("stack")
def test_three_selected_rows_then_every_batch_matching_a_filter_are_each_cancelled_once(
    page, live_server, simulator
):
    wait_for_batches(simulator.count())
    chosen = list(Batch.objects.filter(status="in_progress").order_by("-created_at")[:3])
    sign_in(page, live_server, "/?status=in_progress")
    for batch in chosen:
        page.get_by_label(f"Select {batch.batch_id} for bulk cancel").check()
    button = page.locator("[data-bulk-submit]")
    expect(button).to_have_text("Cancel 3 batches")
    button.click()
    page.wait_for_url(re.compile(r"/batches/bulk-cancel/\?"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Cancel 3 batches?")
    expect(page.locator("main, body").first).to_contain_text("Partial results are kept")
    page.get_by_role("button", name="Cancel 3 batches").click()
    page.wait_for_url(re.compile(r"/batches/bulk-cancel/\d+/$"))
    expect(page.locator("[data-finished]")).to_be_visible(timeout=30000)
    expect(page.locator('[data-count="done"]')).to_have_text("3")
    assert page.locator("#bulk-progress").get_attribute("hx-trigger") is None  # polling stopped
    assert simulator.cancels_accepted() == {b.batch_id: 1 for b in chosen}

    # Every batch matching a filter, by keyboard alone.
    validating = sorted(Batch.objects.filter(status="validating").values_list("batch_id", flat=True))
    assert validating
    page.goto(f"{live_server.url}/?status=validating")
    every = page.locator("[data-bulk-filtered]")
    expect(every.locator("xpath=..")).to_contain_text(f"All {len(validating)} batches matching these filters")
    tab_until_focused(page, every)
    page.keyboard.press("Space")
    expect(every).to_be_checked()
    tab_until_focused(page, page.locator("[data-bulk-submit]"))
    expect(page.locator("[data-bulk-submit]")).to_have_text(f"Cancel {len(validating)} batches")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/batches/bulk-cancel/\?"))
    confirm = page.get_by_role("button", name=f"Cancel {len(validating)} batches")
    tab_until_focused(page, confirm)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/batches/bulk-cancel/\d+/$"))
    expect(page.locator("[data-finished]")).to_be_visible(timeout=30000)
    expect(page.locator('[data-count="done"]')).to_have_text(str(len(validating)))
    accepted = simulator.cancels_accepted()
    assert accepted == {batch_id: 1 for batch_id in [*(b.batch_id for b in chosen), *validating]}
    # Not one cancel sent twice or refused on the way, whatever its status.
    cancels = [r for r in simulator.requests("/v1/batches/") if r["path"].endswith("/cancel")]
    assert {(r["method"], r["status"], r["count"]) for r in cancels} == {("POST", 200, 1)}
    assert len(cancels) == len(accepted)
