"""The page poll in a real headless Chromium (batches/views_live.py, static/js/app.js): one request
per interval for the whole page, only the changed rows swapped, the title and summary following, no
polling in a hidden tab, and an expired session sent to the login page."""

from __future__ import annotations

import itertools
import time

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from batches import live
from batches.models import Batch
from tests.support.factories import make_batch

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page, live_server) -> None:
    User.objects.create_user("watcher", password="pw-watcher-1")
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "watcher")
    page.fill("input[name=password]", "pw-watcher-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def sync_writes(batch: Batch, **changes) -> None:
    """What the sync's writer does for a changed batch: the row, then its connection's change counter."""
    Batch.objects.filter(pk=batch.pk).update(**changes)
    live._bump_now(batch.connection_id)


def polls_of(page) -> list[str]:
    sent: list[str] = []
    page.on(
        "request",
        # The events stream (push: its own tests in test_browser_push.py) is not a poll.
        lambda request: ("/live/?" in request.url or "/row/" in request.url) and sent.append(request.url),
    )
    return sent


def test_a_list_of_30_running_rows_sends_one_request_per_interval(page, live_server):
    for _ in range(30):
        make_batch(status="in_progress")
    sent = polls_of(page)
    sign_in(page, live_server)
    assert page.locator("tr[data-live]").count() == 30
    page.wait_for_timeout(11_000)  # two 5 s intervals
    assert all("/live/?" in url for url in sent), sent
    assert 2 <= len(sent) <= 3, sent


def test_a_list_whose_rows_change_every_interval_still_polls_once_per_interval(page, live_server):
    batch = make_batch(status="in_progress", completed_requests=0, failed_requests=0)
    make_batch(status="in_progress")
    moments: list[float] = []
    page.on("request", lambda request: "/live/?" in request.url and moments.append(time.monotonic()))
    sign_in(page, live_server)
    # Every answer now carries a changed row (a swap), as on a busy team's list.
    for done in range(1, 9):
        sync_writes(batch, completed_requests=done * 10)
        page.wait_for_timeout(2_000)
    expect(page.locator(f"#batch-{batch.pk}")).to_contain_text("80 done", timeout=12_000)
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    # The answer's X-Live-Poll-In (or the 5 s interval) sets the next poll; never the 10 s safety net.
    assert len(moments) >= 3 and max(gaps) < 7.5, gaps


def test_changed_rows_update_and_unchanged_rows_keep_their_element(page, live_server):
    batches = [make_batch(status="in_progress", completed_requests=10, failed_requests=0) for _ in range(3)]
    sign_in(page, live_server)
    for batch in batches:
        # A JS property lives on the element object itself: it survives only if htmx never swaps it.
        page.locator(f"#batch-{batch.pk}").evaluate("element => { element.__kept = true }")
    sync_writes(batches[1], completed_requests=55)
    expect(page.locator(f"#batch-{batches[1].pk}")).to_contain_text("55 done", timeout=12_000)
    kept = {
        batch.pk: page.locator(f"#batch-{batch.pk}").evaluate("element => element.__kept === true")
        for batch in batches
    }
    assert kept == {batches[0].pk: True, batches[1].pk: False, batches[2].pk: True}


def test_the_title_and_the_summary_follow_a_finished_batch(page, live_server):
    running = make_batch(status="in_progress")
    make_batch(status="in_progress")
    sign_in(page, live_server)
    assert page.title().startswith("2 running")
    sync_writes(running, status="failed", is_terminal=True)
    expect(page).to_have_title("1 running, 1 failed · Batch dashboard", timeout=12_000)
    expect(page.locator('#summary [data-status="failed"] .count')).to_have_text("1")
    # The finished row has left the poll.
    expect(page.locator(f"#batch-{running.pk}")).not_to_have_attribute("data-live", str(running.pk))


def test_a_hidden_tab_stops_polling(page, live_server):
    make_batch(status="in_progress")
    sent = polls_of(page)
    sign_in(page, live_server)
    page.evaluate(
        """() => {
            Object.defineProperty(document, "hidden", {value: true, configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    sent.clear()
    page.wait_for_timeout(11_000)
    assert sent == []


def test_an_expired_session_leads_to_the_login_page(page, live_server):
    make_batch(status="in_progress")
    sign_in(page, live_server)
    Session.objects.all().delete()
    page.wait_for_url(f"{live_server.url}/login/?next=/", timeout=15_000)
