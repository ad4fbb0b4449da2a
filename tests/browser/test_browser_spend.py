"""The spend page and the new-batch estimate in a real browser, on the simulator's batches: the README's
screenshots, the audit of both pages at phone and desktop width in light and dark, and the htmx forms."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from playwright.sync_api import expect

from batches import sync
from batches.models import Batch
from spend import shipped
from spend.models import Price
from tests.browser.conftest import SCREENSHOT_DIR
from tests.support.factories import make_user

WIDTHS = (390, 1280)
# The palette (--muted, the header's link colour) is the shared stylesheet's, which issue 15 reworks for
# contrast in light and dark on its own branch; these pages use its classes only. Once both are merged,
# this exception goes and the audit covers contrast too.
PALETTE_RULES = {"color-contrast"}


@pytest.fixture
def synced(simulator_connection, live_server, transactional_db):
    # A live server's tests flush the database, the migration's prices with it.
    shipped.load(Price)
    sync.full_sync(simulator_connection, complete=True)
    make_user("olga", "operator", password="pw-olga-1")
    return simulator_connection


def sign_in(page, live_server, path: str) -> None:
    page.goto(f"{live_server.url}/login/?{urlencode({'next': path})}")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "pw-olga-1")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(live_server.url) + r"/(spend|batches)/.*"))


def audit(page) -> None:
    """No serious or critical axe finding and no sideways scrolling, at each width, light and dark."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            found = Axe().run(page).response["violations"]
            bad = [
                (v["id"], v["impact"], [node["target"] for node in v["nodes"]][:5])
                for v in found
                if v["impact"] in ("serious", "critical") and v["id"] not in PALETTE_RULES
            ]
            assert not bad, (scheme, width, bad)
            # Within <main>: the header's navigation is the shared layout's (issue 15 gives it a phone
            # menu); a table may scroll inside its own focusable box.
            wide = page.evaluate(
                "[...document.querySelectorAll('main *')].filter(e => !e.closest('.table-wrap') &&"
                " e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
                ".slice(0, 6).map(e => e.tagName + '.' + e.className)"
            )
            assert not wide, f"sideways scrolling at {width}px ({scheme}): {wide}"


def test_the_spend_page_groups_the_simulators_spend_and_says_so_in_the_url(page, live_server, synced):
    assert Batch.objects.filter(cost_micros__isnull=False).exists(), "the simulator's batches have no cost"
    # The simulator's finished batches were created over the last two weeks.
    today = timezone.localdate()
    sign_in(page, live_server, f"/spend/?period=custom&start={today - timedelta(days=14)}&end={today}")
    page.set_viewport_size({"width": 1280, "height": 900})
    expect(page.locator("#spend-table")).to_be_visible()
    total = page.locator("[data-total]").inner_text()
    assert total.startswith("$") and total != "$0.00"
    page.select_option("select[name=group]", "model")
    expect(page.locator("#spend-table thead")).to_contain_text("Model")
    assert "group=model" in page.url and "period=custom" in page.url  # pushed into the URL by htmx
    assert page.locator("#spend-chart-title + svg rect").count() > 3
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "spend.png"), full_page=True)
    audit(page)


def test_the_estimate_appears_before_anything_is_uploaded(page, live_server, synced, simulator):
    batches_before = simulator.count()
    lines = [
        {
            "custom_id": f"q{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Summarise this support ticket. " * 40}],
                "max_tokens": 300,
            },
        }
        for n in range(500)
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    sign_in(page, live_server, "/batches/new/")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.set_input_files(
        "input[type=file]", {"name": "tickets.jsonl", "mimeType": "application/jsonl", "buffer": content}
    )
    page.get_by_role("button", name="Check and estimate the cost").click()
    expect(page.locator("[data-estimate]")).to_contain_text("Estimated cost: $", timeout=30_000)
    expect(page.locator("#estimate")).to_contain_text("500 requests")
    # The file is still chosen: the estimate replaced only its own section.
    assert page.locator("input[type=file]").evaluate("input => input.files.length") == 1
    assert simulator.count() == batches_before
    page.locator("#create-batch").screenshot(path=str(SCREENSHOT_DIR / "estimate.png"))
    audit(page)
