"""Writing audit events: one function, so every caller records the same fields."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import AuditEvent
from dashboard.client_ip import client_ip as _client_ip
from dashboard.redaction import redact


def client_ip(request: HttpRequest | None) -> str | None:
    # Behind a trusted proxy, the client's address from X-Forwarded-For (dashboard/client_ip.py).
    return None if request is None else _client_ip(request)


def record(
    action: str,
    *,
    actor: User | AnonymousUser | None = None,
    actor_name: str = "",
    target: str = "",
    succeeded: bool = True,
    detail: str = "",
    request: HttpRequest | None = None,
) -> AuditEvent:
    user = actor if actor is not None and actor.is_authenticated else None
    return AuditEvent.objects.create(
        at=timezone.now(),
        actor=user,
        actor_name=(user.get_username() if user else actor_name)[:150],
        action=action,
        target=target[:300],
        succeeded=succeeded,
        detail=redact(detail)[:2000],
        ip_address=client_ip(request),
    )
