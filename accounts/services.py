"""Writes about users: each records its audit event here, so that no caller writes one."""

from __future__ import annotations

from django.contrib.auth.models import User

from accounts import audit, roles
from accounts.models import AuditEvent


def save_user_role(user: User, role: str, *, actor_name: str) -> None:
    """Save the user with this role and record who gave it. Admins also reach Django's admin site,
    where users are managed."""
    user.is_staff = role == roles.ADMIN
    user.save()
    roles.set_role(user, role)
    audit.record(AuditEvent.Action.USER_ROLE, actor_name=actor_name, target=user.get_username(), detail=role)
