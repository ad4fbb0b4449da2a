"""Bulk cancel's own pages and controls in Chromium: no sideways scrolling at 390 and 1280 px, an
axe-core audit without serious or critical findings in light and dark, and a row's ticked box kept
while the row polls."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from playwright.sync_api import expect

from batches import live
from batches.models import BulkCancel, BulkCancelItem
from tests.support.factories import make_batch, make_user

pytestmark = pytest.mark.django_db(transaction=True)
State = BulkCancelItem.State


def signed_in_context(browser, live_server, *, width: int, scheme: str):
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "pw-olga-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return context, page


def serious_findings(page, context: dict | None = None) -> list[str]:
    results = Axe().run(page, context=context)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def scrolls_sideways(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")


@pytest.fixture
def bulk_pages(live_server):
    make_user("olga", "operator")
    running = [make_batch(status="in_progress") for _ in range(3)]
    finished = BulkCancel.objects.create(
        idempotency_key="f" * 32, created_at=timezone.now(), selection="3 selected batches"
    )
    for batch, state in zip(running, (State.DONE, State.ALREADY_FINISHED, State.REFUSED), strict=True):
        BulkCancelItem.objects.create(
            bulk=finished,
            batch=batch,
            state=state,
            message="The API refused to cancel: Cannot cancel a batch with status 'finalizing'.",
        )
    finished.finished_at = timezone.now()
    finished.save()
    going = BulkCancel.objects.create(
        idempotency_key="g" * 32, created_at=timezone.now(), selection="every cancellable batch"
    )
    BulkCancelItem.objects.create(bulk=going, batch=make_batch(status="in_progress"))
    query = "&".join(f"batch={b.pk}" for b in running)
    return {
        "confirmation": f"/batches/bulk-cancel/?{query}",
        "progress, finished": f"/batches/bulk-cancel/{finished.pk}/",
        "progress, running": f"/batches/bulk-cancel/{going.pk}/",
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [390, 1280])
def test_the_bulk_cancel_pages_fit_the_screen_and_pass_axe(browser, live_server, bulk_pages, width, scheme):
    context, page = signed_in_context(browser, live_server, width=width, scheme=scheme)
    try:
        problems = {}
        for name, path in bulk_pages.items():
            page.goto(f"{live_server.url}{path}")
            findings = serious_findings(page)
            if findings or scrolls_sideways(page):
                problems[name] = findings or ["scrolls sideways"]
        # On the list, only what bulk cancel adds: the bar and the rows' boxes.
        page.goto(f"{live_server.url}/")
        expect(page.locator("#bulk-cancel")).to_be_visible()
        findings = serious_findings(page, {"include": [["#bulk-cancel"], [".c-select"]]})
        if findings:
            problems["list: bulk bar and boxes"] = findings
        assert problems == {}
    finally:
        context.close()


def test_a_ticked_row_stays_ticked_while_the_row_polls_and_changes(browser, live_server):
    make_user("olga", "operator")
    batch = make_batch(status="in_progress", completed_requests=10)
    context, page = signed_in_context(browser, live_server, width=1280, scheme="light")
    try:
        box = page.get_by_label(f"Select {batch.batch_id} for bulk cancel")
        box.check()
        expect(page.locator("[data-bulk-submit]")).to_have_text("Cancel 1 batch")
        type(batch).objects.filter(pk=batch.pk).update(completed_requests=55)
        live.bump(batch.connection_id)  # as the sync's writer does after a change
        expect(page.locator(f"#batch-{batch.pk}")).to_contain_text("55 done", timeout=15000)
        expect(box).to_be_checked()
    finally:
        context.close()
