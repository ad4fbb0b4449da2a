"""The shared cache: Django's RedisCache, which degrades to a cache that always misses while Redis is down.

Every web process and worker must see the same cached values (a figure cached by one gunicorn
worker and cleared by another, who was last checked polling), so the cache lives in Redis, never
in one process's memory. Nothing kept in it is the only copy of anything: sessions and sign-in
failures live in the database, and every cached value can be worked out again. So while Redis is
unreachable a cache operation is a miss (reads) or nothing (writes) instead of a 500, and pages
and cancel keep working, as the fault suite checks (tests/faults/test_redis_outage.py).

After a failure this process leaves Redis alone for RETRY_AFTER seconds rather than paying a
connection attempt on every cache call of every request. That pause is the only per-process state
here, and it only ever makes the cache miss, which is always correct.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis import ConnectionPool, Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

RETRY_AFTER = 5.0  # seconds without trying Redis after a failed call

T = TypeVar("T")


class _ReusingClient(RedisCacheClient):
    """Django builds a new redis.Redis object around the pool on every cache call; the object is
    stateless apart from the pool, so one per pool does (a few percent of a row poll, which makes two
    cache calls)."""

    # Django's own (private) members, which django-stubs does not declare.
    _client: type[Redis]
    _get_connection_pool: Callable[[bool], ConnectionPool]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ResilientRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ReusingClient
        self._down_until = 0.0
        self._lock = threading.Lock()

    def _guard(self, call: Callable[[], T], fallback: T) -> T:
        if time.monotonic() < self._down_until:
            return fallback
        try:
            return call()
        except (RedisError, OSError) as error:
            with self._lock:
                first = time.monotonic() >= self._down_until
                self._down_until = time.monotonic() + RETRY_AFTER
            if first:
                # The class name only: redis-py's messages quote the URL, which may hold a password.
                logger.warning("Cache unavailable (%s); serving without it", type(error).__name__)
            return fallback

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guard(lambda: super(ResilientRedisCache, self).add(key, value, timeout, version), False)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._guard(lambda: super(ResilientRedisCache, self).get(key, default, version), default)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        self._guard(lambda: super(ResilientRedisCache, self).set(key, value, timeout, version), None)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guard(lambda: super(ResilientRedisCache, self).touch(key, timeout, version), False)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._guard(lambda: super(ResilientRedisCache, self).delete(key, version), False)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        keys = list(keys)
        return self._guard(lambda: super(ResilientRedisCache, self).get_many(keys, version), {})

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._guard(lambda: super(ResilientRedisCache, self).has_key(key, version), False)

    def set_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        return self._guard(
            lambda: super(ResilientRedisCache, self).set_many(data, timeout, version), list(data)
        )

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        keys = list(keys)
        self._guard(lambda: super(ResilientRedisCache, self).delete_many(keys, version), None)

    def clear(self) -> None:
        self._guard(lambda: super(ResilientRedisCache, self).clear(), None)
