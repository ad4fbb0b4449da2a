"""The push doorbell: Server-Sent Events that say only "connection N changed" (views_events serves them).

Every bump of a connection's change counter (batches.live) is also published on one Redis channel.
An events process (ASGI, deploy/gunicorn_events.conf.py) holds ONE subscription to it per event loop,
the Hub, and fans each message out to its open streams through an in-memory inbox per stream: never a
Redis connection per browser. A stream's inbox is a set of connection pks, so a burst of changes waits
as one event and its memory is bounded by the number of connections. Events carry connection pks only;
the page then asks its ordinary poll (/live/) what changed, with every check that poll makes.

While Redis is unreachable the hub retries with a growing pause and streams only send heartbeats; pages
poll on their timer meanwhile. After such a gap every stream is told that everything may have changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import AsyncIterator, Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from batches import live

logger = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
# A well-formed message is a connection's pk; anything longer is not one of ours.
MAX_MESSAGE_BYTES = 20


class Inbox:
    """What one open stream has yet to be told: the changed connections among those it watches."""

    __slots__ = ("changed", "wake", "watched")

    def __init__(self, watched: Iterable[str]) -> None:
        self.watched = frozenset(watched)
        self.changed: set[str] = set()
        self.wake = asyncio.Event()

    def offer(self, connection: str) -> None:
        every = live.EVERY_CONNECTION
        if connection == every or every in self.watched or connection in self.watched:
            self.changed.add(connection)
            self.wake.set()

    def take(self) -> list[str]:
        changed, self.changed = sorted(self.changed), set()
        self.wake.clear()
        return changed


class Hub:
    """One Redis subscription for every stream of this event loop."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.inboxes: set[Inbox] = set()
        self.subscribed = asyncio.Event()  # set while the subscription is up (the tests wait for it)
        self._task: asyncio.Task[None] | None = None

    def join(self, inbox: Inbox) -> None:
        self.inboxes.add(inbox)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="live-events-hub")

    def leave(self, inbox: Inbox) -> None:
        self.inboxes.discard(inbox)

    def dispatch(self, connection: str) -> None:
        for inbox in self.inboxes:
            inbox.offer(connection)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        pause, failed = RETRY_FIRST_SECONDS, False
        while True:
            try:
                await self._subscribe_and_dispatch(after_gap=failed)
            except Exception as error:  # whatever it was, the streams need the subscription back
                was_up = self.subscribed.is_set()
                self.subscribed.clear()
                if was_up:
                    pause = RETRY_FIRST_SECONDS  # a new outage starts with a short pause again
                if not isinstance(error, RedisError | OSError):
                    logger.exception("Live events: the Redis subscription failed; retrying")
                elif was_up or not failed:
                    logger.warning(
                        "Live events: Redis subscription lost (%s); retrying", type(error).__name__
                    )
                failed = True
                await asyncio.sleep(pause * random.uniform(0.5, 1.0))
                pause = min(pause * 2, RETRY_MAX_SECONDS)

    async def _subscribe_and_dispatch(self, *, after_gap: bool) -> None:
        # No socket timeout: the subscription is idle for as long as nothing changes; the health
        # check's pings notice a Redis that went away.
        client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2, health_check_interval=10)
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(live.EVENTS_CHANNEL)
                self.subscribed.set()
                if after_gap:
                    logger.info("Live events: Redis subscription restored")
                    self.dispatch(live.EVERY_CONNECTION)  # what changed meanwhile is unknown
                while True:
                    message = await pubsub.get_message(timeout=10.0)
                    if message is None or message.get("type") != "message":
                        continue
                    data = message.get("data")
                    if isinstance(data, bytes) and 0 < len(data) <= MAX_MESSAGE_BYTES and data.isdigit():
                        self.dispatch(data.decode())
                    else:
                        logger.warning("Live events: skipped a message that is not a connection pk")
        finally:
            await client.aclose()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub_for_this_loop(redis_url: str) -> Hub:
    """The hub of the running event loop (one per events process; tests run several loops)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.redis_url != redis_url:
        hub = _hubs[loop] = Hub(redis_url)
    return hub


async def stream(
    hub: Hub, watched: Iterable[str], *, seconds: float, heartbeat: float
) -> AsyncIterator[bytes]:
    """The text/event-stream body: `change` events (data: comma-separated connection pks), a comment
    every `heartbeat` seconds, and its end after `seconds` (the browser then reconnects)."""
    inbox = Inbox(watched)
    hub.join(inbox)
    loop = asyncio.get_running_loop()
    try:
        # A reconnect pause of its own per stream, so that streams cut together do not return together.
        yield f"retry: {random.randint(1000, 4000)}\n: connected\n\n".encode()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(inbox.wake.wait(), timeout=min(heartbeat, left))
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            changed = inbox.take()
            if changed:
                yield f"event: change\ndata: {','.join(changed)}\n\n".encode()
    finally:
        hub.leave(inbox)
