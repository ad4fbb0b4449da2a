"""What a page poll needs from Redis: the change counters and the register of watched connections.

- **Change counters.** The writer bumps its connection's counter (one field of one Redis hash) after
  every committed write that changes what a row or the summary shows. A page poll reads the whole hash
  in one round trip and compares it with the token the page got with its last answer: equal means
  nothing it shows can have changed, and the answer is a 204 without touching the database.
- **Watchers.** Every page poll marks the connections it shows as watched for WATCH_SECONDS (a Redis
  key with that time-to-live, renewed by each poll); the sync refreshes a watched connection faster
  (batches.pacing).

Both ride in the same pipeline, so a poll that finds nothing changed costs one Redis round trip. While
Redis is down a poll treats everything as changed (correct, only dearer) and a bump is lost, which the
token's age limit (LIVE_RECHECK_SECONDS) covers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError

from dashboard.shared_redis import client, text

logger = logging.getLogger(__name__)

CHANGES_KEY = "batch-dashboard:changes"
WATCH_PREFIX = "batch-dashboard:watched:"
NEXT_REFRESH_KEY = "batch-dashboard:next-refresh"
# Every bump is also published here as the connection's pk: the doorbell that makes open pages poll at
# once (batches/live_events.py).
EVENTS_CHANNEL = "batch-dashboard:changes:events"
# A page that shows every connection (the unfiltered list) watches this one key instead of each.
EVERY_CONNECTION = "all"
# Connections one page may watch at most (its `w` parameter).
MAX_WATCHED = 20


def watched_names(text: str) -> list[str]:
    """A page's `w` parameter, as its polls and its events stream send it: connection pks, or
    EVERY_CONNECTION, each once; anything else is dropped. A pk is ASCII digits, at most 18 of them
    ("²".isdigit() is true, and int() refuses it)."""
    names = (
        name
        for name in text.split(",")[:MAX_WATCHED]
        if name == EVERY_CONNECTION or (name.isascii() and name.isdigit() and len(name) <= 18)
    )
    return list(dict.fromkeys(names))


def bump(connection_pk: int) -> None:
    """Count a change to the batches of this connection, once the caller's transaction commits (a
    poll that read the new counter must also see the new rows)."""
    transaction.on_commit(lambda: _bump_now(connection_pk))


def _bump_now(connection_pk: int) -> None:
    try:
        # One round trip for the counter and the doorbell (push: batches/live_events.py).
        pipe = client().pipeline(transaction=False)
        pipe.hincrby(CHANGES_KEY, str(connection_pk), 1)
        pipe.publish(EVENTS_CHANNEL, str(connection_pk))
        pipe.execute()
    except (RedisError, OSError) as error:
        logger.warning("Could not count a change of connection %s (%s)", connection_pk, type(error).__name__)


@dataclass(frozen=True)
class Reading:
    token: str | None  # None while Redis is unreachable
    next_refresh: dict[str, float]  # connection pk: when its next refresh is due (Unix time)
    also: tuple[bytes | None, ...] = ()  # the values of watch_and_read's `also_get` keys

    def next_refresh_of(self, watched: Iterable[str]) -> float | None:
        """When the next refresh of the watched connections is due, as the last refreshes recorded."""
        names = set(watched)
        due = [at for pk, at in self.next_refresh.items() if EVERY_CONNECTION in names or pk in names]
        return min(due) if due else None


def watch_and_read(watched: Iterable[str], also_get: Sequence[str] = ()) -> Reading:
    """Mark `watched` (connection pks as strings, or EVERY_CONNECTION) as watched and read the
    current change token and when the next refreshes are due, in one round trip; with the values
    of the keys `also_get` in the same one (the page poll's shared page state, batches.views_live)."""
    names = list(watched)
    try:
        pipe = client().pipeline(transaction=False)
        for name in names:
            pipe.set(f"{WATCH_PREFIX}{name}", 1, ex=settings.LIVE_WATCH_SECONDS)
        pipe.hgetall(CHANGES_KEY)
        pipe.hgetall(NEXT_REFRESH_KEY)
        for key in also_get:
            pipe.get(key)
        counters, due, *also = pipe.execute()[len(names) :]
    except (RedisError, OSError):
        return Reading(None, {})
    return Reading(token(counters), {text(k): float(text(v)) for k, v in due.items()}, tuple(also))


def record_next_refresh(connection_pk: int, at: float) -> None:
    """A refresh says when the next one is due, so that pages can poll just after it (views_live)."""
    with contextlib.suppress(RedisError, OSError):
        client().hset(NEXT_REFRESH_KEY, str(connection_pk), repr(at))


def read_token() -> str | None:
    """The current change token, for a page being rendered; None while Redis is unreachable."""
    try:
        return token(client().hgetall(CHANGES_KEY))
    except (RedisError, OSError):
        return None


def token(counters: Mapping[bytes | str, bytes | str]) -> str:
    """The hash's fields in a fixed order: a new connection, or any bump, gives a different token."""
    fields = sorted((text(k), text(v)) for k, v in counters.items())
    return ".".join(f"{k}-{v}" for k, v in fields) or "0"


def is_watched(connection_pk: int) -> bool:
    """Whether a page showing this connection polled within LIVE_WATCH_SECONDS; False without Redis."""
    try:
        return bool(client().exists(f"{WATCH_PREFIX}{connection_pk}", f"{WATCH_PREFIX}{EVERY_CONNECTION}"))
    except (RedisError, OSError):
        return False
