"""The push doorbell's parts in this process (tests/integration/test_live_events.py runs the events
server): the publish on bump, the view under ASGI (Django's AsyncClient) and WSGI, the hub's fan-out
over the private Redis, the page's poll element and the CSP."""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys

import pytest
from django.test import AsyncClient

from batches import live, live_events
from batches.models import Connection
from dashboard import shared_redis
from tests.support.asyncio_thread import run_async
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db
# The view closes its request's database connection before streaming, which a test's transaction
# cannot survive.
closes_its_connection = pytest.mark.django_db(transaction=True)


def test_a_bump_publishes_the_connections_pk_once_its_transaction_commits(django_capture_on_commit_callbacks):
    pubsub = shared_redis.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(live.EVENTS_CHANNEL)
    try:
        with django_capture_on_commit_callbacks() as callbacks:
            live.bump(7)
            assert pubsub.get_message(timeout=0.3) is None  # not before the commit
        assert len(callbacks) == 1
        callbacks[0]()
        message = pubsub.get_message(timeout=2)
        assert message is not None and message["data"] == b"7"
        assert shared_redis.client().hget(live.CHANGES_KEY, "7") == b"1"
    finally:
        pubsub.close()


def test_under_wsgi_the_events_url_answers_404_so_the_page_keeps_its_timer(client):
    client.force_login(make_user("member"))
    response = client.get("/live/events/", {"w": "all"})
    assert response.status_code == 404
    assert not response.streaming


def asgi_get(path: str, user=None, **headers):
    async def get():
        client = AsyncClient()
        if user is not None:
            await client.aforce_login(user)
        return await client.get(path, headers=headers)

    return run_async(get)


@closes_its_connection
def test_under_asgi_anyone_signed_out_gets_403_and_no_stream():
    response = asgi_get("/live/events/?w=all")
    assert response.status_code == 403
    assert not response.streaming


@closes_its_connection
def test_under_asgi_a_signed_in_user_gets_a_stream_that_ends(settings):
    settings.LIVE_EVENTS_STREAM_SECONDS = 1
    settings.LIVE_EVENTS_HEARTBEAT_SECONDS = 0.3
    response = asgi_get("/live/events/?w=all", user=make_user("member"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"

    async def body() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    text = run_async(body).decode()
    assert text.startswith("retry: ") and ": heartbeat" in text


@closes_its_connection
def test_cors_is_answered_only_for_an_allowed_page_origin(settings):
    settings.LIVE_EVENTS_ALLOWED_ORIGINS = ["http://127.0.0.1:8000"]
    allowed = asgi_get("/live/events/?w=none", user=make_user("member"), Origin="http://127.0.0.1:8000")
    assert allowed.status_code == 204  # watches nothing: EventSource stops without a stream
    assert allowed["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"
    assert allowed["Access-Control-Allow-Credentials"] == "true"
    other = asgi_get("/live/events/?w=none", user=make_user("other"), Origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in other


def test_a_stream_is_told_only_of_the_connections_it_watches_once_per_burst(redis_settings: str):
    async def scenario() -> list[bytes]:
        hub = live_events.Hub(redis_settings)
        body = live_events.stream(hub, ["3"], seconds=3, heartbeat=5)
        received = [await body.__anext__()]
        await asyncio.wait_for(hub.subscribed.wait(), 5)
        publisher = shared_redis.client()
        for pk in (4, 3, 3, 3, b"not-a-pk", 4):
            await asyncio.to_thread(publisher.publish, live.EVENTS_CHANNEL, pk)
        await asyncio.sleep(0.3)
        received.append(await asyncio.wait_for(body.__anext__(), 3))
        await body.aclose()
        assert not hub.inboxes  # a closed stream leaves the hub
        await hub.close()
        return received

    received = run_async(scenario)
    assert received[1] == b"event: change\ndata: 3\n\n"


def test_the_page_poll_fires_on_a_nudge_and_names_the_events_url(client, settings):
    client.force_login(make_user("member"))
    page = client.get("/").content.decode()
    assert 'hx-trigger="live-poll, live-nudge"' in page
    assert 'data-events="/live/events/"' in page
    assert "js/live-events.js" in page
    settings.LIVE_EVENTS_URL = ""
    assert 'data-events=""' in client.get("/").content.decode()


def test_an_absolute_events_url_is_allowed_by_the_csp():
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LIVE_"))}
    environment.update(DJANGO_DEBUG="1", LIVE_EVENTS_URL="http://127.0.0.1:8123/live/events/")
    code = (
        "from dashboard import settings; print(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']['connect-src'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    assert ast.literal_eval(result.stdout.strip()) == ["'self'", "http://127.0.0.1:8123"]


def test_connections_are_visible_to_a_stream_only_if_they_exist():
    from batches.live import watched_names
    from batches.views_events import visible_names

    connection = Connection.objects.create(name="one", base_url="http://127.0.0.1:9/v1")
    names = watched_names(f"{connection.pk},99999,all,<x>,{'9' * 40},²")
    assert names == [str(connection.pk), "99999", "all"]
    assert visible_names(names) == [str(connection.pk), "all"]
