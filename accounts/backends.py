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
