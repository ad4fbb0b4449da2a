"""How often a connection's active batches are refreshed: fast while someone watches, within its budget.

- A connection with an open page polling it (batches.live: a poll in the last LIVE_WATCH_SECONDS) is
  refreshed every `refresh_interval` seconds (5 by default); with nobody watching, every
  SYNC_IDLE_REFRESH_SECONDS (60). Its full syncs are rarer then (SYNC_IDLE_FULL_SYNC_SECONDS) and
  take the place of a refresh (batches.schedule), and one that made k list calls puts the next refresh
  k such intervals later, so that with the refresh of each minute listing one page an idle connection
  costs one call a minute, full syncs included.
- Never beyond the connection's API budget: SYNC_API_CALLS_PER_MINUTE calls in any sliding minute,
  counted in one Redis sorted set per connection, so that every worker spends from the same budget
  (refreshes and full syncs alike).
- A 429's retry-after and a failing connection's backoff (batches.schedule) come on top.

The refresh task records when its next run is due from the delay worked out here (batches.tasks); beat's
dispatcher, ticking every second, starts it then (batches.schedule.claim_due_work).
"""

from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings
from django.utils import timezone
from redis.exceptions import RedisError

from batches import live
from batches.models import Connection
from dashboard.shared_redis import client

logger = logging.getLogger(__name__)

BUDGET_PREFIX = "batch-dashboard:api-calls:"
WINDOW = 60.0  # the budget's sliding window, in seconds
# An idle connection's next refresh is at most this many idle intervals away, however many pages the
# full sync before walked: a long walk (a complete one every 6 hours, a big account) goes over the idle
# pace of one call a minute for a while rather than leave its active batches unrefreshed for longer.
IDLE_CATCH_UP_INTERVALS = 5

# Atomically: forget calls older than the window; if `n` more fit in the budget, record them and
# answer 0, else answer how many seconds until enough calls have left the window. ARGV[6] is '1' to
# spend only within the budget, '0' to record calls already made, 'peek' to record nothing.
_TAKE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if ARGV[6] ~= '0' and used + n > limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, used + n - limit - 1, 'WITHSCORES')
  return tostring(tonumber(oldest[#oldest]) + window - now)
end
if ARGV[6] == 'peek' then
  return '0'
end
for i = 1, n do
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. i)
end
redis.call('EXPIRE', KEYS[1], math.ceil(window) * 2)
return '0'
"""


def _budget_key(connection_pk: int) -> str:
    return f"{BUDGET_PREFIX}{connection_pk}"


def take_call(connection_pk: int) -> float:
    """Spend one API call of the connection's budget if it has one left: 0.0, or else the seconds
    until it has. Without Redis the answer is 0.0: the broker lives there too, so no task runs then."""
    return _take(connection_pk, 1, "1")


def budget_wait(connection_pk: int) -> float:
    """Seconds until the connection has an API call left in its budget (0.0: now); spends nothing."""
    return _take(connection_pk, 1, "peek")


def spend_calls(connection_pk: int, calls: int) -> None:
    """Record calls already made (a refresh that needed more than the one it took, a webhook's fetch)."""
    if calls > 0:
        _take(connection_pk, calls, "0")


def _take(connection_pk: int, calls: int, mode: str) -> float:
    try:
        answer = client().eval(
            _TAKE,
            1,
            _budget_key(connection_pk),
            repr(time.time()),
            repr(WINDOW),
            settings.SYNC_API_CALLS_PER_MINUTE,
            calls,
            uuid.uuid4().hex,
            mode,
        )
    except (RedisError, OSError) as error:
        logger.warning("API budget of connection %s unavailable (%s)", connection_pk, type(error).__name__)
        return 0.0
    return max(0.0, float(answer))


def calls_in_last_minute(connection_pk: int) -> int:
    key = _budget_key(connection_pk)
    now = time.time()
    return int(client().zcount(key, now - WINDOW, "+inf"))


def refresh_interval(connection: Connection, watched: bool | None = None) -> float:
    """Seconds between two refreshes of the connection: its own interval while a page watches it,
    the idle interval (never shorter than its own) otherwise."""
    if watched is None:
        watched = live.is_watched(connection.pk)
    if watched:
        return float(connection.refresh_interval)
    return float(max(connection.refresh_interval, settings.SYNC_IDLE_REFRESH_SECONDS))


def full_sync_interval(connection: Connection, watched: bool) -> float:
    """Seconds between two full syncs: the connection's own interval while a page watches it; idle, the
    refresh of each minute lists the newest page, which is where new batches appear, so rarer."""
    if watched:
        return float(connection.full_sync_interval)
    return float(max(connection.full_sync_interval, settings.SYNC_IDLE_FULL_SYNC_SECONDS))


def next_refresh_delay(connection: Connection, *, budget_wait: float = 0.0, calls: int = 1) -> float:
    """When the next refresh is due, in seconds from now, after a run that made `calls` list calls (a
    full sync in the refresh's place): its interval (idle, one interval per call), or later if a
    backoff or the budget says so."""
    watched = live.is_watched(connection.pk)
    delay = refresh_interval(connection, watched)
    if not watched:
        delay *= min(max(1, calls), IDLE_CATCH_UP_INTERVALS)
    if connection.next_attempt_at is not None:
        delay = max(delay, (connection.next_attempt_at - timezone.now()).total_seconds())
    return max(delay, budget_wait)
