"""Encrypting connection keys at rest with Fernet (from the cryptography package)."""

from __future__ import annotations

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


def encrypt(api_key: str) -> str:
    register_secret(api_key)
    return _fernet().encrypt(api_key.encode()).decode()


def decrypt(token: str) -> str:
    try:
        api_key = _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise EncryptionNotConfigured(
            "A stored key cannot be decrypted: DASHBOARD_ENCRYPTION_KEY differs from the one it was "
            "encrypted with."
        ) from None
    register_secret(api_key)
    return api_key


def last4(api_key: str) -> str:
    return api_key[-4:] if len(api_key) >= 8 else ""


def generate_key() -> str:
    return Fernet.generate_key().decode()
