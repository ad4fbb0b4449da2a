from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts import audit
from accounts.models import AuditEvent


@receiver(user_logged_in)
def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit.record(AuditEvent.Action.SIGN_IN, actor=user, request=request)


@receiver(user_logged_out)
def _signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit.record(AuditEvent.Action.SIGN_OUT, actor=user, request=request)


@receiver(user_login_failed)
def _sign_in_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Django already hides the password in `credentials`; only the username is kept.
    audit.record(
        AuditEvent.Action.SIGN_IN_FAILED,
        actor_name=str(credentials.get("username", ""))[:150],
        succeeded=False,
        request=request,
    )
