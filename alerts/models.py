"""Who is told about what (Channel), what was or will be told (Delivery), how far the scan of status
changes got (ScanCursor), and which OpenAI webhook deliveries were already taken in (WebhookReceipt)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.db import models

from batches.models import Batch, Connection

# Outcome events come from status changes; the last two from looking at active batches.
OUTCOME_EVENTS = ("completed", "failed", "expired", "cancelled")
EVENTS = (*OUTCOME_EVENTS, "stalled", "at_risk")
EVENT_LABELS = {
    "completed": "completed",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
    "stalled": "stalled",
    "at_risk": "at risk of expiring",
}


class Channel(models.Model):
    """Where notifications go. A channel with no connection hears about every connection; one with no
    user is a team channel that only admins manage; an empty events list means every event."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (signed JSON)"
        SLACK = "slack", "Slack incoming webhook"
        EMAIL = "email", "Email"

    name = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Webhook and Slack URLs often carry a token in their path: pages show only the host.
    url = models.URLField(max_length=1000, blank=True)
    email = models.EmailField(blank=True)
    # HMAC key of a generic webhook ("whsec_<base64>" as in Standard Webhooks, or any other string).
    secret = models.CharField(max_length=200, blank=True)
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

    @property
    def target(self) -> str:
        """Where it sends, safe to show: the address, or a URL's scheme and host only."""
        if self.kind == self.Kind.EMAIL:
            return self.email
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}/…" if parts.scheme else ""

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
        indexes = [models.Index(fields=("state", "next_attempt_at"), name="delivery_due")]

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
    received_at = models.DateTimeField()

    class Meta:
        ordering = ("-received_at",)

    def __str__(self) -> str:
        return f"{self.event_type} {self.batch_id} ({self.webhook_id})"
