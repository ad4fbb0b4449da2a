"""Forget who polls (accounts/polls.py remembers each poller's role in Redis for POLL_AUTH_SECONDS)."""

from accounts import polls
from dashboard import shared_redis


def forget_pollers() -> None:
    keys = list(shared_redis.client().scan_iter(f"{polls.KEY_PREFIX}*"))
    if keys:
        shared_redis.client().delete(*keys)
