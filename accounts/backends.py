from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Case, IntegerField, Max, When

from accounts.roles import ROLES, remember_role


class RoleAwareModelBackend(ModelBackend):
    """Loads the signed-in user and their role in one query: every page asks for the role, and a
    polling fragment should not pay a second query for it."""

    def get_user(self, user_id: Any) -> Any:
        user_model = get_user_model()
        rank = Max(
            Case(
                *(When(groups__name=name, then=index) for index, name in enumerate(ROLES)),
                default=-1,
                output_field=IntegerField(),
            )
        )
        user = user_model._default_manager.annotate(role_rank=rank).filter(pk=user_id).first()
        if user is None or not self.user_can_authenticate(user):
            return None
        remember_role(user, ROLES[user.role_rank] if user.role_rank >= 0 else None)
        return user


AXES_USERNAME_LENGTH = 255  # django-axes' username columns


def axes_username(request: Any, credentials: dict[str, Any] | None = None) -> str | None:
    """The username django-axes records and locks out by (AXES_USERNAME_CALLABLE): the one signed in
    with, cut to axes' 255-character columns. Django's sign-in form does not enforce the username's
    max_length, so a longer one (only scanners send them) reached the database, and PostgreSQL refused
    the row: a 500 on the sign-in pages. django-axes#1381; its proposed fix (#1480) truncates likewise."""
    if credentials:
        username = credentials.get("username")
    else:
        username = getattr(request, "data", request.POST).get("username")
    return username[:AXES_USERNAME_LENGTH] if isinstance(username, str) else username
