"""The pages in a real headless Chromium against Django's live server."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from batches import live
from tests.support.factories import make_batch

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page, live_server) -> None:
    User.objects.create_user("viewer", password="pw-viewer-1")
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", "pw-viewer-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_it_signs_in_and_shows_the_batch_list(page, live_server):
    make_batch(batch_id="batch_in_the_browser", status="in_progress")
    sign_in(page, live_server)
    # Ids are shortened in the middle on the page; the full id is the link's title.
    row = page.locator("tr", has=page.locator('a[title="batch_in_the_browser"]'))
    assert row.count() == 1
    assert "in progress" in row.inner_text()
    # htmx came from django-htmx's bundled copy and is running.
    assert page.evaluate("typeof htmx !== 'undefined' && htmx.version.startsWith('2')")


def test_a_running_row_updates_itself_without_a_reload(page, live_server):
    batch = make_batch(batch_id="batch_moving", status="in_progress", completed_requests=10)
    sign_in(page, live_server)
    row = page.locator(f"#batch-{batch.pk}")
    assert "10 done" in row.inner_text()
    type(batch).objects.filter(pk=batch.pk).update(completed_requests=77, status="finalizing")
    live._bump_now(batch.connection_id)  # as the sync's writer does after a change (batches/live.py)
    expect(page.locator(f"#batch-{batch.pk}")).to_contain_text("77 done", timeout=15000)
    assert "finalizing" in page.locator(f"#batch-{batch.pk}").inner_text()


def test_an_unchanged_row_is_kept_while_its_times_tick_in_the_browser(page, live_server):
    created = timezone.now() - timedelta(minutes=2)
    batch = make_batch(batch_id="batch_ticking", status="in_progress", created_at=created)
    polls: list[int] = []
    # The page poll only (the events stream at /live/events/ is not a poll).
    page.on("response", lambda response: "/live/?" in response.url and polls.append(response.status))
    sign_in(page, live_server)
    row = page.locator(f"#batch-{batch.pk}")
    ago = row.locator('time[data-relative="ago"]').first
    before = ago.inner_text()
    assert before.startswith("2m ") and before.endswith(" ago"), before
    # A mark on the row's element survives only if htmx never swaps the row; the page's one poll
    # answers 204 while nothing changed.
    row.evaluate("element => { element.dataset.mark = 'kept' }")
    page.wait_for_timeout(6500)  # more than one 5 s poll
    assert polls and set(polls) == {204}, polls
    assert row.get_attribute("data-mark") == "kept"
    assert ago.inner_text() != before
    assert row.locator('time[data-relative="elapsed"]').inner_text().startswith("2m ")


def test_filters_live_in_the_url_and_the_back_button_works(page, live_server):
    make_batch(batch_id="batch_failed_one", status="failed")
    make_batch(batch_id="batch_running_one", status="in_progress")
    sign_in(page, live_server)
    page.click("a.status-card[data-status=failed]")  # the status cards are the status filter
    page.wait_for_url("**/?*status=failed*")
    expect(page.locator("#batch-table")).not_to_contain_text("batch_running_one")
    assert "batch_failed_one" in page.inner_text("#batch-table")
    page.go_back()
    expect(page.locator("#batch-table")).to_contain_text("batch_running_one")


PAYLOADS = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned='img'\">",
    '"><svg onload="window.__pwned=\'svg\'">',
    "javascript:window.__pwned='href'",
]


def test_script_payloads_from_the_api_stay_inert_in_a_real_browser(page, live_server):
    batch = make_batch(
        batch_id="batch_hostile",
        status="failed",
        metadata={f"k{i}": payload for i, payload in enumerate(PAYLOADS)},
        errors=[{"code": "x", "message": payload, "param": payload, "line": 1} for payload in PAYLOADS],
        model=PAYLOADS[1],
        endpoint=PAYLOADS[2],
    )
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, live_server)
    for path in ("/", f"/batches/{batch.pk}/", "/?q=%3Cscript%3E"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__pwned") is None, path
    assert dialogs == []
    # The payloads are shown as text, not dropped.
    page.goto(f"{live_server.url}/batches/{batch.pk}/")
    assert "<script>window.__pwned = 'script'</script>" in page.locator("body").inner_text()


def test_pages_carry_a_content_security_policy_without_inline_script(page, live_server):
    sign_in(page, live_server)
    response = page.goto(f"{live_server.url}/")
    policy = response.headers["content-security-policy"]
    assert (
        "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    )
    assert response.headers["x-frame-options"] == "DENY"
    # Everything still works under the policy: htmx loaded from /static/.
    assert page.evaluate("typeof htmx") == "object"
