"""Who is told about what (Channel), what was or will be told (Delivery), how far the scan of status
changes got (ScanCursor), and which OpenAI webhook deliveries were already taken in (WebhookReceipt)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models

from alerts import environment
from batches import secrets
from batches.models import Batch, Connection
from batches.statuses import TERMINAL_STATUSES
from dashboard.redaction import register_secret

# Outcome events, one per terminal status, come from status changes; "stalled" and "at_risk" from looking
# at active batches; "budget" from the spend app's monthly budgets (spend.budget_alerts).
OUTCOME_EVENTS = TERMINAL_STATUSES
BUDGET_EVENT = "budget"
EVENTS = (*OUTCOME_EVENTS, "stalled", "at_risk", BUDGET_EVENT)
EVENT_LABELS = {
    "completed": "completed",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
    "stalled": "stalled",
    "at_risk": "at risk of expiring",
    BUDGET_EVENT: "budget warnings",
}


class SecretUnavailable(Exception):
    """A channel's URL or secret cannot be read now (no or another encryption key, a variable that may
    not be read). The message names what is missing, never a value."""


def _after_host(url: str, netloc: str) -> str:
    """What follows the host in a URL: the path, query and fragment, where webhook tokens live."""
    return url.split(netloc, 1)[-1]


def hint_for_url(url: str) -> str:
    """What pages show of a URL: its scheme, host and the last four characters after the host (as
    connection keys are shown); never the path or query, where Slack and most webhooks keep a token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # a URL saved before URLs were checked, such as "http://[::1/"
        return "(not a valid URL)"
    if not parts.scheme:
        return ""
    rest = _after_host(url, parts.netloc) if parts.netloc else ""
    tail = secrets.last4(rest)
    if not rest.strip("/"):
        return f"{parts.scheme}://{host}"[:300]  # nothing after the host to hide (or to show)
    return f"{parts.scheme}://{host}/…{tail}"[:300]


def _reveal(encrypted: str, env: str, what: str) -> str:
    if encrypted:
        try:
            value = secrets.decrypt(encrypted, register=False)
        except secrets.EncryptionNotConfigured as error:
            raise SecretUnavailable(f"the channel's {what} cannot be decrypted: {error}") from None
    elif env:
        refused = environment.refusal(env)
        if refused:
            raise SecretUnavailable(f"the channel's {what} may not be read from {env}: {refused}")
        value = os.environ.get(env, "").strip()
        if not value:
            raise SecretUnavailable(f"the environment variable {env} holding the channel's {what} is not set")
    else:
        return ""
    for part in _secret_parts(value) if what == "URL" else (value,):
        register_secret(part)
    return value


def _secret_parts(url: str) -> list[str]:
    """The parts of a channel URL that can carry a token, for log redaction: what follows the host
    (Slack's and most webhooks' token lives in the path or query) and a password in the URL. The
    scheme and host are not secret, and masking them would mangle every log line naming the host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [parts.password] if parts.password else []
    rest = _after_host(url, parts.netloc) if parts.netloc else url
    if rest.strip("/"):
        found.append(rest)
    return found


class Channel(models.Model):
    """Where notifications go. A channel with no connection hears about every connection; one with no
    user is a team channel that only admins manage; an empty events list means every event."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (signed JSON)"
        SLACK = "slack", "Slack incoming webhook"
        EMAIL = "email", "Email"

    name = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Webhook and Slack URLs often carry a token in their path, and a webhook's HMAC key ("whsec_<base64>"
    # as in Standard Webhooks, or any other string) signs what we send: each is either stored encrypted
    # (Fernet with DASHBOARD_ENCRYPTION_KEY, as connection keys are) or read at send time from the
    # environment variable named beside it. Read and set them through `url` and `secret`; pages show
    # only url_hint.
    url_encrypted = models.TextField(blank=True)
    url_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable holding the URL."
    )
    url_hint = models.CharField(max_length=300, blank=True)
    email = models.EmailField(blank=True)
    secret_encrypted = models.TextField(blank=True)
    secret_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable holding the secret."
    )
    enabled = models.BooleanField(default=True)
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_channels"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_channels",
    )
    events = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return self.name or f"{self.get_kind_display()} #{self.pk}"

    # `url` and `secret` may be given to the constructor (Channel(url=...), objects.create(url=...)):
    # Django sets properties from keyword arguments. Setting one needs DASHBOARD_ENCRYPTION_KEY.

    @property
    def url(self) -> str:
        """The URL to post to, decrypted or read from its variable; '' if none. Raises
        SecretUnavailable."""
        return _reveal(self.url_encrypted, self.url_env, "URL")

    @url.setter
    def url(self, value: str) -> None:
        self.url_encrypted = secrets.encrypt(value, register=False) if value else ""
        for part in _secret_parts(value) if value else ():
            register_secret(part)
        self.url_hint = hint_for_url(value) if value else ""
        if value:
            self.url_env = ""

    @property
    def secret(self) -> str:
        """The HMAC key, decrypted or read from its variable; '' if none. Raises SecretUnavailable."""
        return _reveal(self.secret_encrypted, self.secret_env, "secret")

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = secrets.encrypt(value) if value else ""
        if value:
            self.secret_env = ""

    @property
    def has_url(self) -> bool:
        return bool(self.url_encrypted or self.url_env)

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted or self.secret_env)

    @property
    def target(self) -> str:
        """Where it sends, safe to show: the address, a URL's scheme, host and last four characters,
        or the name of the variable holding the URL."""
        if self.kind == self.Kind.EMAIL:
            return self.email
        if self.url_env and not self.url_encrypted:
            return f"${self.url_env}"
        return self.url_hint

    def wants(self, event: str, connection_id: int) -> bool:
        return (
            self.enabled
            and (not self.events or event in self.events)
            and (self.connection_id is None or self.connection_id == connection_id)
        )


class Delivery(models.Model):
    """One event for one channel. The unique (channel, batch, event) makes every event at most one row,
    however many workers notice it; the state moves pending -> sending -> sent (or back to pending
    for a retry, or to failed after the last attempt) only by compare-and-set."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="alert_deliveries")
    event = models.CharField(max_length=20)
    # What is sent, fixed when the event is noticed so that every attempt sends the same body.
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("channel", "batch", "event"), name="one_delivery_per_event")
        ]
        indexes = [
            models.Index(fields=("state", "next_attempt_at"), name="delivery_due"),
            # Housekeeping deletes sent and given-up deliveries by age.
            models.Index(fields=("state", "created_at"), name="delivery_state_created"),
        ]

    def __str__(self) -> str:
        return f"{self.event} of {self.batch_id} to channel {self.channel_id} ({self.state})"


class ScanCursor(models.Model):
    """How far a scan got (the id of the last status change taken in), advanced by compare-and-set."""

    name = models.CharField(max_length=50, unique=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"


class WebhookReceipt(models.Model):
    """An OpenAI webhook delivery taken in; the unique webhook-id turns a redelivery into a no-op."""

    webhook_id = models.CharField(max_length=200, unique=True)
    event_type = models.CharField(max_length=100)
    connection = models.ForeignKey(Connection, null=True, on_delete=models.SET_NULL, related_name="+")
    batch_id = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(db_index=True)  # housekeeping deletes receipts by age

    class Meta:
        ordering = ("-received_at",)

    def __str__(self) -> str:
        return f"{self.event_type} {self.batch_id} ({self.webhook_id})"
