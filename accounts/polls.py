"""Who is polling: a short-lived answer for read-only polls.

An open batch list polls each running row every 5 s, so polls are most of what the server answers,
and loading the signed-in user with their role was a fifth of a poll. A poll is read-only and shows
what the page showed seconds before, so it may reuse who is asking, and with what role, for
POLL_AUTH_SECONDS:

- signing out still stops polls at once: the session is read on every request, and its deletion
  ends them;
- a user deactivated, demoted or whose password changed elsewhere is noticed within those seconds;
- every other request, and every write (cancel), checks the user in full as before.

The answer is kept in the shared cache (Redis), not in one web process's memory, so that every
gunicorn worker agrees on it; while Redis is down every poll simply checks in full.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from accounts.roles import can_admin, can_operate

CACHE_PREFIX = "poller:"


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
    key = f"{CACHE_PREFIX}{user_id}:{request.session.get(HASH_SESSION_KEY, '')}"
    window = settings.POLL_AUTH_SECONDS
    now = time.time()  # wall-clock time, since web processes on different machines compare it
    if window > 0:
        known = cache.get(key)
        # The cache's own expiry is only housekeeping: the age is checked here, to the window.
        if isinstance(known, tuple) and len(known) == 3 and 0 <= now - known[2] < window:
            return Poller(can_operate=bool(known[0]), can_admin=bool(known[1]), checked_at=float(known[2]))
    user = request.user  # the full check: active, password unchanged, role
    if not user.is_authenticated:
        if window > 0:
            cache.delete(key)
        return None
    checked = Poller(can_operate=can_operate(user), can_admin=can_admin(user), checked_at=now)
    if window > 0:
        cache.set(key, (checked.can_operate, checked.can_admin, now), timeout=max(1, math.ceil(window)))
    return checked


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
