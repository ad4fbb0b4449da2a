"""The push doorbell end to end: a real events server (gunicorn's ASGI worker with
deploy/gunicorn_events.conf.py, as the systemd unit runs it) on loopback, the private Redis, the test
database. A change bumped by the writer's path (batches.live.bump) reaches an open stream as an event."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.roles import VIEWER, set_role
from batches import live
from batches.models import Connection
from dashboard import shared_redis
from tests.support.events_server import EventsServer, events_server

STREAM_SECONDS = 4


@pytest.fixture
def server(transactional_db, redis_settings: str, tmp_path: Path) -> Iterator[EventsServer]:
    settings = {"LIVE_EVENTS_STREAM_SECONDS": str(STREAM_SECONDS), "LIVE_EVENTS_HEARTBEAT_SECONDS": "0.5"}
    with events_server(redis_settings, tmp_path / "events.log", **settings) as started:
        yield started


@pytest.fixture
def events_url(server: EventsServer) -> str:
    return f"http://127.0.0.1:{server.port}/live/events/"


def session_cookie(username: str) -> dict[str, str]:
    user = get_user_model().objects.create_user(username, password="a-long-enough-password-1")
    set_role(user, VIEWER)
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


class Stream:
    """An open text/event-stream, read line by line with a deadline."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()

    def read_until(self, wanted: str, seconds: float) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = next(self.lines)
            except StopIteration:
                break
            seen.append(line)
            if wanted in line:
                return seen
        raise AssertionError(f"{wanted!r} not read within {seconds} s; read {seen}")


def open_stream(http: httpx.Client, url: str, watched: str, cookies: dict[str, str]):
    return http.stream("GET", url, params={"w": watched}, cookies=cookies)


def wait_for_subscribers(count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if shared_redis.client().pubsub_numsub(live.EVENTS_CHANNEL)[0][1] == count:
            return
        time.sleep(0.05)
    raise AssertionError(shared_redis.client().pubsub_numsub(live.EVENTS_CHANNEL))


def test_an_anonymous_request_gets_a_403_and_no_stream(events_url: str):
    response = httpx.get(events_url, params={"w": "all"}, timeout=10)
    assert response.status_code == 403
    assert "event-stream" not in response.headers.get("content-type", "")


def test_a_viewer_is_told_of_a_change_to_a_connection_they_watch_and_not_of_another(events_url: str):
    shown = Connection.objects.create(name="shown", base_url="http://127.0.0.1:9/v1")
    other = Connection.objects.create(name="other", base_url="http://127.0.0.1:9/v1")
    cookies = session_cookie("viewer")
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=3)) as http,
        open_stream(http, events_url, str(shown.pk), cookies) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        stream = Stream(response)
        stream.read_until(": connected", 5)
        wait_for_subscribers(1)
        live.bump(other.pk)  # autocommit: on_commit runs at once, as after the writer's transaction
        live.bump(shown.pk)
        lines = stream.read_until(f"data: {shown.pk}", 5)
    assert "event: change" in lines
    assert [line for line in lines if line.startswith("data:")] == [f"data: {shown.pk}"]


def test_many_streams_share_one_redis_subscription_and_hold_no_thread_each(
    server: EventsServer, events_url: str
):
    shown = Connection.objects.create(name="shown", base_url="http://127.0.0.1:9/v1")
    cookies = session_cookie("viewer")
    with httpx.Client(timeout=httpx.Timeout(10, read=3)) as http:
        streams = [open_stream(http, events_url, "all", cookies) for _ in range(3)]
        responses = [stream.__enter__() for stream in streams]
        try:
            readers = [Stream(response) for response in responses]
            for reader in readers:
                reader.read_until(": connected", 5)
            wait_for_subscribers(1)
            assert shared_redis.client().pubsub_numsub(live.EVENTS_CHANNEL)[0][1] == 1
            # Nor a thread per stream (dashboard/asgi_events.py): the loop's, and asgiref's one shared.
            assert server.worker_threads() <= 3
            live.bump(shown.pk)
            for reader in readers:
                reader.read_until(f"data: {shown.pk}", 5)
        finally:
            for stream in streams:
                stream.__exit__(None, None, None)


def test_a_stream_sends_heartbeats_and_ends_so_that_the_browser_reconnects(events_url: str):
    cookies = session_cookie("viewer")
    started = time.monotonic()
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=3)) as http,
        open_stream(http, events_url, "all", cookies) as response,
    ):
        lines = list(response.iter_lines())
    took = time.monotonic() - started
    assert lines[0].startswith("retry: ")
    assert lines.count(": heartbeat") >= 3
    assert 0.8 * STREAM_SECONDS - 0.5 <= took <= STREAM_SECONDS + 3


def test_a_signed_out_session_is_refused_at_the_next_reconnect(events_url: str):
    cookies = session_cookie("leaver")
    with httpx.Client(timeout=10) as http:
        with open_stream(http, events_url, "all", cookies) as response:
            assert response.status_code == 200
        from django.contrib.sessions.models import Session

        Session.objects.all().delete()  # what signing out does to the session row
        with open_stream(http, events_url, "all", cookies) as response:
            assert response.status_code == 403


def test_a_page_that_watches_nothing_gets_204_which_stops_the_event_source(events_url: str):
    cookies = session_cookie("viewer")
    response = httpx.get(events_url, params={"w": "999999,<script>"}, cookies=cookies, timeout=10)
    assert response.status_code == 204
