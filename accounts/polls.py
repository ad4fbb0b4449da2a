"""Who is polling: a short-lived answer for read-only polls.

An open batch list polls each running row every 5 s, so polls are most of what the server answers,
and loading the signed-in user with their role was a fifth of a poll. A poll is read-only and shows
what the page showed seconds before, so it may reuse who is asking, and with what role, for
POLL_AUTH_SECONDS:

- signing out still stops polls at once: the session is read on every request, and its deletion
  ends them;
- a user deactivated, demoted or whose password changed elsewhere is noticed within those seconds;
- every other request, and every write (cancel), checks the user in full as before.

The answer is kept in Redis (dashboard.shared_redis, as plain text: Django's cache API, with its key
checks and pickling, was a twentieth of a page poll), not in one web process's memory, so that every
gunicorn worker agrees on it; while Redis is down every poll simply checks in full.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from accounts.roles import can_admin, can_operate
from dashboard import shared_redis

KEY_PREFIX = "batch-dashboard:poller:"


@dataclass(frozen=True, slots=True)
class Poller:
    can_operate: bool
    can_admin: bool
    checked_at: float  # time.time() of the full check


class PollRequest(HttpRequest):
    """The request a view under poll_login_required receives: it carries the Poller."""

    poller: Poller


def poller(request: HttpRequest) -> Poller | None:
    """The signed-in user behind a poll, or None for anyone signed out."""
    try:
        user_id = request.session[SESSION_KEY]
    except KeyError:
        return None
    # The session's hash of the password is part of the key, so a session from before a password
    # change never matches a check made after it.
    key = f"{KEY_PREFIX}{user_id}:{request.session.get(HASH_SESSION_KEY, '')}"
    window = settings.POLL_AUTH_SECONDS
    now = time.time()  # wall-clock time, since web processes on different machines compare it
    if window > 0:
        known = _read(key)
        # The key's own expiry is only housekeeping: the age is checked here, to the window.
        if known is not None and 0 <= now - known.checked_at < window:
            return known
    user = request.user  # the full check: active, password unchanged, role
    if not user.is_authenticated:
        if window > 0:
            _forget(key)
        return None
    checked = Poller(can_operate=can_operate(user), can_admin=can_admin(user), checked_at=now)
    if window > 0:
        _keep(key, checked, max(1, math.ceil(window)))
    return checked


def _read(key: str) -> Poller | None:
    try:
        kept = shared_redis.client().get(key)
    except (RedisError, OSError):
        return None
    # "<can operate> <can admin> <checked at>"; anything else (an older release's value) is ignored.
    fields = kept.split() if isinstance(kept, bytes) else []
    if len(fields) != 3 or fields[0] not in (b"0", b"1") or fields[1] not in (b"0", b"1"):
        return None
    try:
        checked_at = float(fields[2])
    except ValueError:
        return None
    return Poller(can_operate=fields[0] == b"1", can_admin=fields[1] == b"1", checked_at=checked_at)


def _keep(key: str, checked: Poller, seconds: int) -> None:
    text = f"{int(checked.can_operate)} {int(checked.can_admin)} {checked.checked_at!r}"
    with contextlib.suppress(RedisError, OSError):
        shared_redis.client().set(key, text, ex=seconds)


def _forget(key: str) -> None:
    with contextlib.suppress(RedisError, OSError):
        shared_redis.client().delete(key)


def poll_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """login_required for read-only polls; the view finds the Poller on request.poller (its request
    is a PollRequest). Such a view is also marked @login_not_required, so that LoginRequiredMiddleware
    leaves the check to this one (batches.middleware: Django's would load the user on every poll)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        found = poller(request)
        if found is None:
            return redirect_to_login(request.get_full_path())
        polled = cast(PollRequest, request)  # what this wrapper makes of it, on the next line
        polled.poller = found
        return view(polled, *args, **kwargs)

    return wrapped
