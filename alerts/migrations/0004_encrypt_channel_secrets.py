"""Encrypt the URL and secret of every existing channel with DASHBOARD_ENCRYPTION_KEY.

Without a usable key, and only if some channel has a URL or secret to encrypt, the migration stops
with a message saying what to do. Keeping the plaintext to be encrypted "on the next save" would leave
the tokens of every channel nobody edits in the database indefinitely, which is the very thing this
change is for; and a deployment that stores channel URLs needs the key from now on anyway. Email-only
installs and fresh databases have nothing to encrypt and migrate without a key.
"""

from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import migrations

NO_KEY = (
    "{count} alert channel(s) hold a URL or secret in plain text, and DASHBOARD_ENCRYPTION_KEY is {problem}. "
    "Set it (python manage.py generate_encryption_key prints a new one) and run migrate again; the "
    "migration encrypts them with it. Or delete those channels first and recreate them later."
)


def _fernet_or_refuse(count: int) -> Fernet:
    key = settings.DASHBOARD_ENCRYPTION_KEY
    if not key:
        raise ImproperlyConfigured(NO_KEY.format(count=count, problem="not set"))
    try:
        return Fernet(key.encode())
    except ValueError:
        raise ImproperlyConfigured(NO_KEY.format(count=count, problem="not a valid Fernet key")) from None


def _last4(text: str) -> str:
    return text[-4:] if len(text) >= 8 else ""


def _hint(url: str) -> str:
    # As alerts.models.hint_for_url did when this was written: scheme, host, last four characters.
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "(not a valid URL)"
    if not parts.scheme:
        return ""
    rest = url.split(parts.netloc, 1)[-1] if parts.netloc else ""
    if not rest.strip("/"):
        return f"{parts.scheme}://{host}"[:300]  # nothing after the host to hide (or to show)
    return f"{parts.scheme}://{host}/…{_last4(rest)}"[:300]


def encrypt_channels(apps, schema_editor):
    Channel = apps.get_model("alerts", "Channel")
    plain = Channel.objects.exclude(url="", secret="")
    count = plain.count()
    if not count:
        return
    fernet = _fernet_or_refuse(count)
    for channel in plain.iterator():
        if channel.url:
            channel.url_encrypted = fernet.encrypt(channel.url.encode()).decode()
            channel.url_hint = _hint(channel.url)
        if channel.secret:
            channel.secret_encrypted = fernet.encrypt(channel.secret.encode()).decode()
        channel.url = channel.secret = ""
        channel.save(update_fields=["url", "secret", "url_encrypted", "url_hint", "secret_encrypted"])


def decrypt_channels(apps, schema_editor):
    # Back to the plaintext columns, for a rollback to the code before 0003.
    Channel = apps.get_model("alerts", "Channel")
    encrypted = Channel.objects.exclude(url_encrypted="", secret_encrypted="")
    count = encrypted.count()
    if not count:
        return
    fernet = _fernet_or_refuse(count)
    for channel in encrypted.iterator():
        if channel.url_encrypted:
            channel.url = fernet.decrypt(channel.url_encrypted.encode()).decode()
        if channel.secret_encrypted:
            channel.secret = fernet.decrypt(channel.secret_encrypted.encode()).decode()
        channel.url_encrypted = channel.secret_encrypted = channel.url_hint = ""
        channel.save(update_fields=["url", "secret", "url_encrypted", "url_hint", "secret_encrypted"])


class Migration(migrations.Migration):
    dependencies = [("alerts", "0003_channel_encrypted_fields")]

    operations = [migrations.RunPython(encrypt_channels, decrypt_channels)]
