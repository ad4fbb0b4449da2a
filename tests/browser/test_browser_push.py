"""The push doorbell in a real headless Chromium (static/js/live-events.js): with the events server
running (tests/support/events_server.py: gunicorn's ASGI worker, the test database, the private Redis),
a change makes the open page poll at once, although its poll timer is a minute long; a hidden tab closes
its stream. The page is served by the test server and the events server listens on another port, as in
`make run` (CORS, and the CSP allowing that origin)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from batches import live, views_live
from batches.models import Batch
from tests.browser.test_browser_live import sign_in
from tests.support.events_server import events_server
from tests.support.factories import make_batch

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pushing(live_server, redis_settings: str, settings, tmp_path, monkeypatch) -> Iterator[None]:
    """The events server for the test server's pages, and a poll timer far longer than any wait here."""
    host = urlsplit(live_server.url).hostname
    with events_server(
        redis_settings, tmp_path / "events.log", LIVE_EVENTS_ALLOWED_ORIGINS=live_server.url
    ) as server:
        origin = f"http://{host}:{server.port}"
        settings.LIVE_EVENTS_URL = f"{origin}/live/events/"
        directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
        settings.CONTENT_SECURITY_POLICY = {
            "DIRECTIVES": {**directives, "connect-src": [*directives["connect-src"], origin]}
        }
        monkeypatch.setattr(views_live, "FAST_SECONDS", 60)
        monkeypatch.setattr(views_live, "SLOW_SECONDS", 60)
        yield


def track(page) -> tuple[list[float], list[str]]:
    polls: list[float] = []
    streams: list[str] = []

    def seen(request) -> None:
        if "/live/events/" in request.url:
            streams.append(request.url)
        elif "/live/?" in request.url:
            polls.append(time.monotonic())

    page.on("request", seen)
    return polls, streams


def wait_for(page, condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        page.wait_for_timeout(50)  # not time.sleep: Playwright delivers page events only while called


def test_a_change_makes_the_page_poll_at_once_though_its_timer_is_a_minute(page, live_server, pushing):
    batch = make_batch(status="in_progress", completed_requests=10, failed_requests=0)
    polls, streams = track(page)
    sign_in(page, live_server)
    assert page.locator("#live-poll").get_attribute("data-poll-seconds") == "60"
    wait_for(page, lambda: streams, 10)
    wait_for(page, lambda: live.client().pubsub_numsub(live.EVENTS_CHANNEL)[0][1] == 1, 10)
    page.wait_for_timeout(500)
    before = len(polls)
    Batch.objects.filter(pk=batch.pk).update(completed_requests=77)
    changed_at = time.monotonic()
    live.bump(batch.connection_id)  # as the writer does after its commit
    expect(page.locator(f"#batch-{batch.pk}")).to_contain_text("77 done", timeout=5_000)
    assert len(polls) == before + 1
    assert polls[before] - changed_at < 2.0
    # And again after that answer (which replaced the poll element): each change is a nudge.
    page.wait_for_timeout(1500)
    Batch.objects.filter(pk=batch.pk).update(completed_requests=88)
    changed_at = time.monotonic()
    live.bump(batch.connection_id)
    expect(page.locator(f"#batch-{batch.pk}")).to_contain_text("88 done", timeout=5_000)
    assert len(polls) == before + 2
    assert polls[before + 1] - changed_at < 2.0


def test_a_burst_of_changes_makes_one_poll_not_one_each(page, live_server, pushing):
    batch = make_batch(status="in_progress", completed_requests=10, failed_requests=0)
    polls, streams = track(page)
    sign_in(page, live_server)
    wait_for(page, lambda: streams, 10)
    wait_for(page, lambda: live.client().pubsub_numsub(live.EVENTS_CHANNEL)[0][1] == 1, 10)
    page.wait_for_timeout(500)
    before = len(polls)
    for count in range(11, 21):
        Batch.objects.filter(pk=batch.pk).update(completed_requests=count)
        live.bump(batch.connection_id)
    expect(page.locator(f"#batch-{batch.pk}")).to_contain_text("20 done", timeout=5_000)
    page.wait_for_timeout(1500)
    assert 1 <= len(polls) - before <= 2


def test_a_hidden_tab_closes_its_stream_and_reopens_it_when_shown(page, live_server, pushing):
    make_batch(status="in_progress")
    _, streams = track(page)
    sign_in(page, live_server)
    wait_for(page, lambda: streams, 10)
    closed = page.evaluate(
        """() => new Promise(resolve => {
            const original = EventSource.prototype.close;
            EventSource.prototype.close = function () { original.call(this); resolve(true); };
            Object.defineProperty(document, "hidden", {value: true, configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
            setTimeout(() => resolve(false), 2000);
        })"""
    )
    assert closed is True
    opened = len(streams)
    page.evaluate(
        """() => {
            Object.defineProperty(document, "hidden", {value: false, configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    wait_for(page, lambda: len(streams) > opened, 5)
