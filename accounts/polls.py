"""Who is polling: a short-lived answer for read-only polls.

An open batch list polls each running row every 5 s, so polls are most of what the server answers,
and loading the signed-in user with their role was a fifth of a poll. A poll is read-only and shows
what the page showed seconds before, so it may reuse who is asking, and with what role, for
POLL_AUTH_SECONDS:

- signing out still stops polls at once: the session is read on every request, and its deletion
  ends them;
- a user deactivated, demoted or whose password changed elsewhere is noticed within those seconds
  (each web process remembers on its own);
- every other request, and every write (cancel), checks the user in full as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

from accounts.roles import can_operate

# More sessions than this at once in one process only means a few more full checks.
MAX_REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class Poller:
    can_operate: bool
    checked_at: float  # time.monotonic() of the full check


_recent: dict[tuple[str, str], Poller] = {}


def poller(request: HttpRequest) -> Poller | None:
    """The signed-in user behind a poll, or None for anyone signed out."""
    try:
        user_id = request.session[SESSION_KEY]
    except KeyError:
        return None
    # The session's hash of the password is part of the key, so a session from before a password
    # change never matches a check made after it.
    key = (str(user_id), str(request.session.get(HASH_SESSION_KEY, "")))
    now = time.monotonic()
    known = _recent.get(key)
    if known is not None and now - known.checked_at < settings.POLL_AUTH_SECONDS:
        return known
    user = request.user  # the full check: active, password unchanged, role
    if not user.is_authenticated:
        _recent.pop(key, None)
        return None
    known = Poller(can_operate=can_operate(user), checked_at=now)
    if len(_recent) >= MAX_REMEMBERED:
        _recent.clear()
    _recent[key] = known
    return known


def poll_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """login_required for read-only polls; the view finds the Poller on request.poller."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        found = poller(request)
        if found is None:
            return redirect_to_login(request.get_full_path())
        request.poller = found
        return view(request, *args, **kwargs)

    return wrapped


def forget_all() -> None:
    """For tests: every poll checks in full again."""
    _recent.clear()
