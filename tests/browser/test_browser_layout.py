"""Every page at phone, tablet and desktop widths, in light and dark: no sideways scrolling of the page,
no serious or critical axe-core finding, a dense list, keyboard-only cancel, and the README's
screenshots. One seeded database per test (a simulator's batches synced for real, plus dense rows)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, expect

from batches import live, sync
from batches.eta import estimate
from batches.models import Batch, Connection, ProgressSnapshot
from spend import shipped
from spend.models import Price
from tests.browser.conftest import SCREENSHOT_DIR
from tests.conftest import REPO, SIMULATOR_KEY_ENV
from tests.support.factories import make_batch, make_user

pytestmark = pytest.mark.django_db(transaction=True)

WIDTHS = (1280, 1024, 768, 390)
SCHEMES = ("light", "dark")
# axe-core's impact levels that fail the audit (WCAG 2.2 AA and best practices it tags so).
BLOCKING = {"serious", "critical"}
README_SCREENSHOTS = REPO / "docs" / "screenshots"


@dataclass
class Seeded:
    finished: Batch  # a finished batch of the simulator, with files
    running: Batch  # a running one with an ETA and its range
    cancellable: Batch  # a running batch of the simulator, which can really be cancelled
    connection: Connection


def _long_metadata(index: int) -> dict[str, str]:
    return {
        "project": f"evaluation-suite-{index}",
        "owner": "ana.de.la.cruz@example.com",
        "purpose": "nightly regression of the summarisation prompts",
        "ticket": f"OPS-{4000 + index}",
    }


@pytest.fixture
def seeded(start_simulator, monkeypatch) -> Seeded:
    simulator = start_simulator(batches=20, seed=3)
    monkeypatch.setenv(SIMULATOR_KEY_ENV, "sk-test-simulator")
    connection = Connection.objects.create(
        name="simulated", base_url=simulator.base_url, api_key_env=SIMULATOR_KEY_ENV
    )
    Connection.objects.exclude(pk=connection.pk).update(enabled=False)
    shipped.load(Price)  # the flush of a live server's test took the migration's prices
    sync.full_sync(connection)
    finished = (
        Batch.objects.filter(connection=connection, is_terminal=True)
        .exclude(output_file_id="")
        .order_by("-failed_requests")
        .first()
    )
    assert finished is not None, "the simulator's world has no finished batch with files"
    cancellable = Batch.objects.filter(
        connection=connection, status__in=("validating", "in_progress")
    ).first()
    assert cancellable is not None, "the simulator's world has no running batch"
    now = timezone.now()
    # Dense rows: ids as long as OpenAI's, four metadata keys each, a long model name.
    for index in range(30):
        make_batch(
            batch_id=f"batch_6745a1b2c3d4e5f6a7b8c9{index:02d}",
            status=("in_progress", "completed", "failed", "validating", "finalizing")[index % 5],
            model="gpt-4o-mini-2024-07-18",
            endpoint="/v1/chat/completions",
            metadata=_long_metadata(index),
            created_at=now - timedelta(minutes=5 + index),
        )

    # A running batch, 1,000 requests a minute for 20 minutes, then 10,000 a minute: its snapshots
    # draw the detail page's charts, and the sync's own estimate gives its stored rate and ETA.
    def done_after(minute: int) -> int:
        return 1_000 * minute if minute <= 20 else 20_000 + 10_000 * (minute - 20)

    guess = estimate(
        done=done_after(30),
        total=500_000,
        in_progress_at=now - timedelta(minutes=30),
        now=now,
        previous_done=done_after(27),
        previous_at=now - timedelta(minutes=3),
    )
    running = make_batch(
        batch_id="batch_6745a1b2c3d4e5f6a7b8c9ff",
        status="in_progress",
        in_progress_at=now - timedelta(minutes=30),
        total_requests=500_000,
        completed_requests=done_after(30),
        failed_requests=0,
        last_progress_at=now,
        rate_per_minute=guess.rate_per_minute,
        eta_at=guess.eta_at,
        metadata=_long_metadata(99),
    )
    for minute in range(0, 31, 3):
        ProgressSnapshot.objects.create(
            batch=running,
            taken_at=now - timedelta(minutes=30 - minute),
            completed=done_after(minute),
            failed=0,
            total=500_000,
        )
    return Seeded(finished=finished, running=running, cancellable=cancellable, connection=connection)


def sign_in_as(page: Page, live_server, username: str, role: str) -> None:
    """A session made by Django's test client, handed to the browser: no login form per test."""
    from django.contrib.auth.models import User

    user = User.objects.filter(username=username).first() or make_user(username, role)
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )


def _open_locked_out(page: Page, live_server) -> None:
    from django.contrib.auth.models import User

    if not User.objects.filter(username="sam").exists():
        make_user("sam", "viewer", password="pw-sam-right-1")
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", "sam")
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Too many failed sign-ins")


def _open_server_error(page: Page, live_server) -> None:
    # No URL fails on purpose: the browser gets the real 500 template, served at the live server's
    # origin so its stylesheet loads as it would.
    url = f"{live_server.url}/a-page-that-fails/"
    body = render_to_string("500.html")
    page.route(url, lambda route: route.fulfill(status=500, body=body, content_type="text/html"))
    page.goto(url)


# Each page: (role to sign in with or None, how to open it).
PAGES: dict[str, tuple[str | None, Callable[[Seeded], str] | Callable[[Page, object], None]]] = {
    "list": ("operator", lambda s: "/"),
    "detail": ("operator", lambda s: f"/batches/{s.running.pk}/"),
    "detail-finished": ("operator", lambda s: f"/batches/{s.finished.pk}/"),
    "results": ("operator", lambda s: f"/batches/{s.finished.pk}/results/"),
    "preview": ("operator", lambda s: f"/batches/{s.finished.pk}/files/output/"),
    "new-batch": ("operator", lambda s: "/batches/new/"),
    "resubmit": ("operator", lambda s: f"/batches/{s.finished.pk}/resubmit/"),
    "connections": ("admin", lambda s: "/connections/"),
    "connection-form": ("admin", lambda s: f"/connections/{s.connection.pk}/"),
    "alert-channels": ("admin", lambda s: "/alerts/channels/"),
    "delivery-failures": ("admin", lambda s: "/alerts/failures/"),
    "audit-log": ("admin", lambda s: "/audit/"),
    "login": (None, lambda s: "/login/"),
    "error-403": ("viewer", lambda s: "/connections/"),
    "error-404": ("viewer", lambda s: "/batches/987654/"),
}
SPECIAL = {"error-500": _open_server_error, "locked-out": _open_locked_out}


def open_page(page: Page, live_server, seeded: Seeded, name: str) -> None:
    if name in SPECIAL:
        SPECIAL[name](page, live_server)
    else:
        role, path = PAGES[name]
        if role:
            sign_in_as(page, live_server, f"user-{role}", role)
        page.goto(f"{live_server.url}{path(seeded)}")  # type: ignore[call-arg]
    page.wait_for_load_state("networkidle")


def sideways_overflow(page: Page) -> int:
    """How far the page as a whole scrolls sideways, in CSS pixels (0: not at all)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


WIDEST_JS = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
  .slice(0, 4).map(e => e.tagName.toLowerCase()
    + (e.className ? '.' + String(e.className).split(' ').join('.') : '')
    + ' ' + Math.round(e.getBoundingClientRect().right))"""


# WCAG 2.2's target size (2.5.8) is off in axe-core by default: the audit turns it on.
AXE_OPTIONS = {"resultTypes": ["violations"], "rules": {"target-size": {"enabled": True}}}


def blocking_violations(page: Page) -> list[str]:
    results = Axe().run(page, options=AXE_OPTIONS)
    assert results.response["passes"], "axe-core checked nothing"
    return [
        f"{violation['id']} ({violation['impact']}): "
        + "; ".join(node["target"][0] if node["target"] else "?" for node in violation["nodes"][:5])
        for violation in results.response["violations"]
        if violation["impact"] in BLOCKING
    ]


@pytest.mark.parametrize("name", [*PAGES, *SPECIAL])
def test_every_page_fits_every_width_and_passes_axe_in_light_and_dark(browser, live_server, seeded, name):
    problems: list[str] = []
    for scheme in SCHEMES:
        context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        try:
            open_page(page, live_server, seeded, name)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                overflow = sideways_overflow(page)
                if overflow > 0:
                    widest = ", ".join(page.evaluate(WIDEST_JS))
                    problems.append(
                        f"{scheme} at {width} px: the page scrolls sideways by {overflow} px ({widest})"
                    )
            for width in (1280, 390):
                page.set_viewport_size({"width": width, "height": 900})
                problems += [f"{scheme} at {width} px: {v}" for v in blocking_violations(page)]
        finally:
            context.close()
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_the_list_shows_at_least_20_batches_on_one_line_each_at_1280x900(browser, live_server, seeded):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        open_page(page, live_server, seeded, "list")
        rows = page.locator("#batch-table tbody tr")
        heights = rows.evaluate_all("rows => rows.map(r => r.getBoundingClientRect().height)")
        line = page.evaluate("parseFloat(getComputedStyle(document.body).lineHeight)")
        # One line: no row is taller than two lines of text (the badges' and buttons' padding included).
        assert heights and max(heights) < 2 * line, heights
        visible = rows.evaluate_all(
            "rows => rows.filter(r => { const b = r.getBoundingClientRect();"
            " return b.top >= 0 && b.bottom <= window.innerHeight; }).length"
        )
        assert visible >= 20, f"only {visible} rows in view"
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / "list.png"))
        table = page.locator("#batch-table .table-wrap")
        assert table.evaluate("box => box.scrollWidth <= box.clientWidth"), "the table scrolls at 1280 px"
        # The metadata shows its first key=value and "+3"; the rest appears on keyboard focus too.
        row = page.locator(f"#batch-{seeded.running.pk}")
        more = row.locator(".meta-more")
        assert more.inner_text().startswith("+3")
        pop = more.locator(".meta-pop")
        assert pop.bounding_box()["width"] <= 1  # hidden until hovered or focused
        more.focus()
        assert pop.bounding_box()["width"] > 50 and "ticket=OPS-4099" in pop.inner_text()
        # Long ids are shortened in the middle; the full id is in the tooltip and the copy button.
        link = row.locator(".c-batch a")
        assert link.inner_text() == "batch_6745…8c9ff"
        assert link.get_attribute("title") == seeded.running.batch_id
        assert row.locator("button.copy").get_attribute("data-copy") == seeded.running.batch_id
        # The one ETA, with its range and a rate rounded for people.
        assert "7.6k/min" in row.locator(".c-eta time").get_attribute("title")  # 0.6 x 10k + 0.4 x 4k
        page.goto(f"{live_server.url}/batches/{seeded.running.pk}/")
        page.wait_for_load_state("networkidle")
        header, history = page.locator("[data-eta]").all_inner_texts()
        assert header == history and "7.6k/min" in header and "likely between" in header
        page.screenshot(path=str(SCREENSHOT_DIR / "detail.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{live_server.url}/")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SCREENSHOT_DIR / "list-phone.png"))
    finally:
        context.close()
    context = browser.new_context(color_scheme="dark", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        open_page(page, live_server, seeded, "list")
        page.screenshot(path=str(SCREENSHOT_DIR / "list-dark.png"))
    finally:
        context.close()
    # The README shows this run's screenshots.
    for name in ("list.png", "detail.png", "list-phone.png", "list-dark.png"):
        shutil.copyfile(SCREENSHOT_DIR / name, README_SCREENSHOTS / name)


def test_a_batch_is_cancelled_by_keyboard_alone(browser, live_server, seeded):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in_as(page, live_server, "opal", "operator")
        page.goto(f"{live_server.url}/?q={seeded.cancellable.batch_id}")
        row = page.locator(f"#batch-{seeded.cancellable.pk}")
        target = row.locator("button.danger")
        # The confirmation is the browser's own dialog (hx-confirm), where Enter is OK; Playwright
        # cannot send keys to a native dialog, so it answers for the keyboard.
        page.on("dialog", lambda dialog: dialog.accept())
        for _ in range(400):
            page.keyboard.press("Tab")
            if target.evaluate("button => button === document.activeElement"):
                break
        else:
            pytest.fail("Tab never reached the row's Cancel button")
        outline = target.evaluate("button => getComputedStyle(button).outlineStyle")
        assert outline != "none"  # the focus is visible
        page.keyboard.press("Enter")
        expect(row.locator(".badge").first).to_have_text("cancelling", timeout=15000)
    finally:
        context.close()


def test_a_batch_that_finishes_is_announced_once_and_unchanged_polls_say_nothing(
    browser, live_server, seeded
):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        polls: list[int] = []
        page.on("response", lambda response: "/live/?" in response.url and polls.append(response.status))
        open_page(page, live_server, seeded, "list")
        announcer = page.locator("#announcer")
        assert announcer.get_attribute("aria-live") == "polite"
        page.wait_for_timeout(6000)  # a round of page polls that change nothing
        assert polls and announcer.inner_text() == ""
        Batch.objects.filter(pk=seeded.running.pk).update(
            status="completed", is_terminal=True, completed_at=timezone.now(), completed_requests=49_988
        )
        live.bump(seeded.connection.pk)  # as the sync's writer does after a change
        expect(announcer).to_have_text(
            f"Batch {seeded.running.batch_id[:10]}…8c9ff completed.", timeout=15000
        )
        Batch.objects.filter(pk=seeded.running.pk).update(status="failed", failed_at=timezone.now())
        live.bump(seeded.connection.pk)
        page.wait_for_timeout(6000)  # the row polls no more, and nothing is said again
        assert announcer.inner_text() == f"Batch {seeded.running.batch_id[:10]}…8c9ff completed."
    finally:
        context.close()


def test_the_header_is_a_menu_on_a_phone_that_opens_by_keyboard_without_javascript(
    browser, live_server, seeded
):
    context = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)
    page = context.new_page()
    try:
        open_page(page, live_server, seeded, "connections")  # an admin: the longest menu
        assert not page.locator(".nav-wide").is_visible()
        audit = page.locator(".nav-menu a", has_text="Audit log")
        assert not audit.is_visible()
        page.locator(".nav-menu summary").focus()
        page.keyboard.press("Enter")
        expect(audit).to_be_visible()
        assert sideways_overflow(page) <= 0
        audit.click()
        page.wait_for_url("**/audit/")
        page.set_viewport_size({"width": 1280, "height": 900})
        assert page.locator(".nav-wide a", has_text="Audit log").is_visible()
        assert not page.locator(".nav-menu").is_visible()
    finally:
        context.close()
