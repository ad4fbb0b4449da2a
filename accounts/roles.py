"""Who may do what. Three roles, each including the one before it:

- viewer: sees every batch of every connection;
- operator: may also cancel and create batches and download results;
- admin: may also manage connections and users and read the audit log.

A role is membership of the Django group of the same name; superusers are admins.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import render

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
_RANK = {None: -1, VIEWER: 0, OPERATOR: 1, ADMIN: 2}
# Where role_of caches a user's role on the user object (templates ask several times per page).
_CACHED_ROLE = "_dashboard_role"


def role_of(user: User | AnonymousUser) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMIN
    cached = getattr(user, _CACHED_ROLE, "unset")
    if cached != "unset":
        return cached
    names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    role = next((name for name in reversed(ROLES) if name in names), VIEWER)
    setattr(user, _CACHED_ROLE, role)
    return role


def remember_role(user: User, role: str | None) -> None:
    """Record a role already read with the user (see accounts.backends), so role_of asks no query."""
    setattr(user, _CACHED_ROLE, ADMIN if user.is_superuser else (role or VIEWER))


def has_role(user: User | AnonymousUser, needed: str) -> bool:
    return _RANK[role_of(user)] >= _RANK[needed]


def can_operate(user: User | AnonymousUser) -> bool:
    return has_role(user, OPERATOR)


def can_admin(user: User | AnonymousUser) -> bool:
    return has_role(user, ADMIN)


def set_role(user: User, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    user.groups.remove(*Group.objects.filter(name__in=ROLES))
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    user.__dict__.pop(_CACHED_ROLE, None)


def role_required(
    needed: str | Callable[[], str], *, message: str = "", htmx_template: str = ""
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """The one access check of the views: users below `needed` get 403 before the view runs (so no
    API call is made). Signing in is LoginRequiredMiddleware's job, before this runs.

    `needed` may be a function when a setting decides it, read on every request. Without a message
    the 403 page says only that the role does not allow it; with one it says why, and an htmx
    request gets `htmx_template` (a fragment that says it in place of what was asked for)."""

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            role = needed() if callable(needed) else needed
            if has_role(request.user, role):
                return view(request, *args, **kwargs)
            if not message:
                raise PermissionDenied(f"This needs the {role} role.")
            template = htmx_template if htmx_template and getattr(request, "htmx", False) else "403.html"
            return render(request, template, {"message": message}, status=403)

        return wrapped

    return decorator


def role_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: what the signed-in user may do, so pages hide what they would refuse."""
    user = request.user
    return {
        "role": role_of(user),
        "can_operate": can_operate(user),
        "can_admin": can_admin(user),
    }
