"""Which environment variables a notification channel may read its URL or secret from.

A channel may name a variable instead of storing its URL or HMAC secret (as a connection may for its
API key). Whoever can name a variable can make the workers post its value somewhere (as the URL) or
use it as a signing key; so names must match ALERTS_ENV_NAME_PATTERN, and the dashboard's own
variables (its secret key, encryption key, database and broker URLs, SMTP password, metrics token,
OpenAI key and webhook secret...) are refused whatever the pattern says. The check runs when a
channel is saved and again before every read, so narrowing the pattern takes effect at once.
"""

from __future__ import annotations

import re

from django.conf import settings

from batches import secrets

# The dashboard's own variables, on top of those connections may not name (batches/secrets.py, whose
# list this extends): channels never need an OPENAI_ variable at all.
OWN_PREFIXES = ("DJANGO_", "DASHBOARD_", "OPENAI_", "EMAIL_", "ALERTS_", "SYNC_", "CELERY_", "AXES_")
OWN_NAMES = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "METRICS_TOKEN",
        "DEFAULT_FROM_EMAIL",
        "STALLED_AFTER_MINUTES",
        "SECRET_KEY",
    }
)
_SHAPE = re.compile(r"[A-Z][A-Z0-9_]{0,99}")


def refusal(name: str) -> str | None:
    """Why a channel may not read the variable `name`, or None when it may. Safe to show: it names
    the variable, never its value."""
    if not _SHAPE.fullmatch(name):
        return "Upper-case letters, digits and underscores only, starting with a letter."
    if secrets.is_own_variable(name) or name in OWN_NAMES or name.startswith(OWN_PREFIXES):
        return f"{name} is one of the dashboard's own settings; a channel may not read it."
    if not re.fullmatch(settings.ALERTS_ENV_NAME_PATTERN, name):
        return (
            f"{name} does not match the names channels may read ({settings.ALERTS_ENV_NAME_PATTERN}, "
            "set by ALERTS_ENV_NAME_PATTERN)."
        )
    return None
