"""The Celery task: a thin wrapper that takes a Redis lock and calls the housekeeping service."""

from __future__ import annotations

import contextlib

import redis
from celery import shared_task
from django.conf import settings

from housekeeping import services

LOCK = "batch-dashboard:housekeeping:lock"
# Set after a run and living until shortly before the next is due, so that a second tick delivered
# after the first run finished (two beats by mistake, a redelivered message) finds the work done.
DONE = "batch-dashboard:housekeeping:done"
# Renewed after every chunk, so that a killed worker's lock expires by itself; long enough to outlast
# the longest step without a chunk (a REINDEX CONCURRENTLY of a year's snapshot index on PostgreSQL).
LOCK_SECONDS = 900


@shared_task(acks_late=True, ignore_result=True)
def housekeeping() -> str:
    """Run by beat every DASHBOARD_HOUSEKEEPING_MINUTES; any number of ticks on any number of workers
    run it once."""
    interval = settings.DASHBOARD_HOUSEKEEPING_MINUTES * 60
    client = redis.Redis.from_url(settings.REDIS_URL)
    lock = client.lock(LOCK, timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        return "skipped: another run holds the lock"
    try:
        if client.exists(DONE):
            return "skipped: already run in this interval"
        # A run stops in time for the next one; what it did not reach, that one does.
        report = services.run(max_seconds=interval * 0.8, on_chunk=lock.reacquire)
        client.set(DONE, "1", ex=max(1, int(interval * 0.9)))
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    return str(report)
