"""Connection keys: encrypted at rest with Fernet (from the cryptography package), or read from an
environment variable that the admin names and that passes env_name_refusal."""

from __future__ import annotations

import re

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from dashboard.redaction import register_secret


class EncryptionNotConfigured(Exception):
    """No usable DASHBOARD_ENCRYPTION_KEY, so keys cannot be stored in (or read from) the database."""


def _fernet() -> Fernet:
    key = settings.DASHBOARD_ENCRYPTION_KEY
    if not key:
        raise EncryptionNotConfigured(
            "DASHBOARD_ENCRYPTION_KEY is not set: store the key in an environment variable and give "
            "its name instead, or set DASHBOARD_ENCRYPTION_KEY (manage.py generate_encryption_key)."
        )
    try:
        return Fernet(key.encode())
    except ValueError:
        raise EncryptionNotConfigured(
            "DASHBOARD_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes)."
        ) from None


def encrypt(api_key: str, *, register: bool = True) -> str:
    # register=False for a value only parts of which are secret (an alert channel's URL): the caller
    # registers those parts for log redaction itself.
    if register:
        register_secret(api_key)
    return _fernet().encrypt(api_key.encode()).decode()


def decrypt(token: str, *, register: bool = True) -> str:
    try:
        api_key = _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise EncryptionNotConfigured(
            "A stored key cannot be decrypted: DASHBOARD_ENCRYPTION_KEY differs from the one it was "
            "encrypted with."
        ) from None
    if register:
        register_secret(api_key)
    return api_key


def last4(api_key: str) -> str:
    return api_key[-4:] if len(api_key) >= 8 else ""


def generate_key() -> str:
    return Fernet.generate_key().decode()


# Variables the dashboard reads for itself. A connection's key is sent to the connection's host, so
# naming one of these would hand the server's own secrets (its session signing key, the key that
# encrypts stored API keys, database and broker passwords) to whatever host an admin chose. They are
# refused whatever DASHBOARD_API_KEY_ENV_PATTERN admits. OPENAI_API_KEY is the environment
# connection's own key; other connections get their own variables.
_DENIED_PREFIXES = ("DJANGO_", "DASHBOARD_", "EMAIL_", "ALERTS_", "SYNC_", "CELERY_", "OPENAI_WEBHOOK")
_DENIED_NAMES = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "METRICS_TOKEN",
        "DEFAULT_FROM_EMAIL",
        "STALLED_AFTER_MINUTES",
        "PORT",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_CONNECT_TIMEOUT",
        "OPENAI_READ_TIMEOUT",
        "OPENAI_MAX_RETRIES",
    }
)


def is_own_variable(name: str) -> bool:
    """Whether the dashboard reads `name` for itself: no connection or alert channel may name it."""
    upper = name.upper()
    return upper in _DENIED_NAMES or upper.startswith(_DENIED_PREFIXES)


def env_name_refusal(name: str) -> str | None:
    """Why a connection's key may not be read from the environment variable `name`, or None."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return "An environment variable name has letters, digits and underscores only."
    upper = name.upper()
    if upper in _DENIED_NAMES or upper.startswith(_DENIED_PREFIXES):
        return f"{name} is one of the dashboard's own settings, not an API key; name another variable."
    if not re.fullmatch(settings.DASHBOARD_API_KEY_ENV_PATTERN, name):
        return (
            f"{name} is not a variable connections may read keys from (for example OPENAI_API_KEY_TEAM2 "
            "or ACME_API_KEY; the operator sets the rule in DASHBOARD_API_KEY_ENV_PATTERN)."
        )
    return None
