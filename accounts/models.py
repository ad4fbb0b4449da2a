from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One security-relevant action: a cancel, a connection change, a sign-in or a failed one."""

    class Action(models.TextChoices):
        CANCEL = "cancel", "Cancel batch"
        BULK_CANCEL = "bulk_cancel", "Bulk cancel"
        CREATE_BATCH = "create_batch", "Create batch"
        CONNECTION_CREATE = "connection_create", "Connection created"
        CONNECTION_UPDATE = "connection_update", "Connection changed"
        CONNECTION_DELETE = "connection_delete", "Connection deleted"
        CONNECTION_TEST = "connection_test", "Connection tested"
        SIGN_IN = "sign_in", "Signed in"
        SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
        SIGN_OUT = "sign_out", "Signed out"
        USER_ROLE = "user_role", "User role set"

    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept apart from the foreign key: the name stays readable after the user is deleted, and a
    # failed sign-in has a name but no user.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    target = models.CharField(max_length=300, blank=True)
    succeeded = models.BooleanField(default=True)
    detail = models.TextField(blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ("-at", "-id")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action} {self.target}"
