"""Production settings, key redaction and the secrets at rest."""

import logging
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from dashboard.redaction import RedactingFilter, redact, register_secret
from tests.conftest import REPO

PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-key-0123456789",
    "DJANGO_ALLOWED_HOSTS": "batches.example.com",
    "DJANGO_BEHIND_PROXY": "1",
    "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DJANGO_HSTS_PRELOAD": "1",
    "DASHBOARD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "DATABASE_URL": "postgres://dashboard@127.0.0.1:5432/dashboard",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def test_check_deploy_passes_with_production_variables():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    env.update(PRODUCTION_ENV)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_cookies_are_secure_httponly_and_samesite():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    env.update(PRODUCTION_ENV)
    code = (
        "from django.conf import settings as s; import django; django.setup();"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
        " s.SESSION_COOKIE_SAMESITE, s.X_FRAME_OPTIONS, s.DEBUG)"
    )
    env["DJANGO_SETTINGS_MODULE"] = "dashboard.settings"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.stdout.split() == ["True", "True", "True", "Lax", "DENY", "False"], result.stderr


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer sk-proj-abcdefghijklmnop1234",
        "headers={'authorization': 'Bearer abcdefghijklmnopqrstuvwx'}",
        "api-key: 0123456789abcdef0123456789abcdef",
        "calling with sk-abcdefghijklmnopqrstuvwxyz failed",
    ],
)
def test_key_shaped_values_are_masked(text):
    cleaned = redact(text)
    assert "[redacted]" in cleaned
    for secret in ("abcdefghijklmnop", "0123456789abcdef"):
        assert secret not in cleaned


def test_a_registered_key_without_a_recognisable_shape_is_masked():
    register_secret("azure-key-4f9d8e7c6b5a")
    assert redact("request failed for key azure-key-4f9d8e7c6b5a") == "request failed for key [redacted]"


def test_the_logging_filter_redacts_messages_arguments_and_tracebacks():
    register_secret("my-very-private-key-123")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "key=%s", ("my-very-private-key-123",), None)
    try:
        raise RuntimeError("boom with my-very-private-key-123")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "my-very-private-key-123" not in formatted
    assert "[redacted]" in formatted
