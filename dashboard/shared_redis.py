"""The one raw Redis client of a process, for what the cache API cannot say (locks, counters, sets).

What lives there must agree across every web process and worker (sync locks, change counters, who is
watching, API budgets), so it is in Redis, never in one process's memory. Short timeouts: a caller that
finds Redis gone degrades (see each caller) rather than hanging a request or a worker.
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


def text(value: bytes | str) -> str:
    """A value this client read (bytes: it does not decode) as text."""
    return value.decode() if isinstance(value, bytes) else value
