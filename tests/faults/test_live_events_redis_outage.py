"""The push doorbell through a Redis crash (batches/live_events.py): open streams keep their heartbeats
while Redis is gone, the hub subscribes again when it is back, and every stream is then told that
anything may have changed (what was published meanwhile is lost), so each page polls once."""

from __future__ import annotations

import asyncio

import redis

from batches import live, live_events
from tests.support.asyncio_thread import run_async


def test_streams_survive_a_redis_crash_and_are_told_to_poll_once_it_is_back(dedicated_redis):
    async def scenario() -> list[bytes]:
        hub = live_events.Hub(dedicated_redis.url)
        body = live_events.stream(hub, ["5"], seconds=30, heartbeat=0.5)
        received = [await body.__anext__()]
        await asyncio.wait_for(hub.subscribed.wait(), 5)
        dedicated_redis.kill()
        # Heartbeats go on while Redis is down.
        received.append(await asyncio.wait_for(body.__anext__(), 3))
        await asyncio.to_thread(dedicated_redis.start)
        # Back within the hub's retry pause, then the "anything may have changed" event.
        while not received[-1].startswith(b"event: change"):
            received.append(await asyncio.wait_for(body.__anext__(), 10))
        # And ordinary events flow again on the new subscription.
        await asyncio.wait_for(hub.subscribed.wait(), 5)
        publisher = redis.Redis.from_url(dedicated_redis.url)
        await asyncio.to_thread(publisher.publish, live.EVENTS_CHANNEL, b"5")
        while not received[-1].startswith(b"event: change\ndata: 5"):
            received.append(await asyncio.wait_for(body.__anext__(), 5))
        await body.aclose()
        await hub.close()
        return received

    received = run_async(scenario)
    assert received[1] == b": heartbeat\n\n"
    assert b"event: change\ndata: all\n\n" in received
    assert received[-1] == b"event: change\ndata: 5\n\n"
