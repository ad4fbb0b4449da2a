"""What the dashboard knows: API connections, the batches mirrored from them, and their history.

Current state (Batch) is kept apart from what was observed over time (BatchStatusChange,
ProgressSnapshot), so that the pages can read either cheaply and a sync can write both safely.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q

from batches.statuses import CANCELLABLE_STATUSES


class Connection(models.Model):
    """One API account (an OpenAI project, an Azure resource, a compatible gateway)."""

    class Provider(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        AZURE = "azure", "Azure OpenAI"
        COMPATIBLE = "compatible", "OpenAI-compatible"

    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.OPENAI)
    # The connection configured by environment variables reads its URL, key and headers from the
    # settings at use time, so that changing the environment needs no database edit.
    from_environment = models.BooleanField(default=False)
    base_url = models.CharField(max_length=500, blank=True)
    # A key is either stored encrypted (Fernet, the key from DASHBOARD_ENCRYPTION_KEY) or named by the
    # environment variable that holds it. Pages only ever show the last four characters.
    api_key_encrypted = models.TextField(blank=True)
    api_key_last4 = models.CharField(max_length=4, blank=True)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable holding the key."
    )
    organization = models.CharField(max_length=100, blank=True)
    project = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)
    # While a page shows the connection; with nobody watching, SYNC_IDLE_REFRESH_SECONDS (batches.pacing).
    refresh_interval = models.PositiveIntegerField(default=5, help_text="Seconds, while someone watches.")
    full_sync_interval = models.PositiveIntegerField(default=300, help_text="Seconds.")

    # Sync bookkeeping, written by the sync services.
    next_refresh_at = models.DateTimeField(null=True, blank=True)
    next_full_sync_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_complete_walk_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Set after a 429 (from its retry-after) or repeated failures: no call is made before it.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


def is_stalled(
    status: str,
    last_progress_at: datetime | None,
    in_progress_at: datetime | None,
    now: datetime,
    after: timedelta,
) -> bool:
    """A batch in progress, yet no request finished for `after` (also for rows read as plain values)."""
    if status != "in_progress":
        return False
    since = last_progress_at or in_progress_at
    return since is not None and now - since > after


class Batch(models.Model):
    """The latest known state of one batch, every API field in a typed column plus the raw JSON."""

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="batches")
    batch_id = models.CharField(max_length=200)
    status = models.CharField(max_length=40)
    is_terminal = models.BooleanField(default=False)
    endpoint = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    completion_window = models.CharField(max_length=20, blank=True)
    input_file_id = models.CharField(max_length=200, blank=True)
    output_file_id = models.CharField(max_length=200, blank=True)
    error_file_id = models.CharField(max_length=200, blank=True)

    created_at = models.DateTimeField(null=True, blank=True)
    in_progress_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    total_requests = models.IntegerField(default=0)
    completed_requests = models.IntegerField(default=0)
    failed_requests = models.IntegerField(default=0)

    input_tokens = models.BigIntegerField(null=True, blank=True)
    cached_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    reasoning_tokens = models.BigIntegerField(null=True, blank=True)
    total_tokens = models.BigIntegerField(null=True, blank=True)

    # Derived at sync time so that the list can sort and show them without reading the history.
    done_ratio = models.FloatField(default=0.0)
    last_progress_at = models.DateTimeField(null=True, blank=True)
    rate_per_minute = models.FloatField(null=True, blank=True)
    eta_at = models.DateTimeField(null=True, blank=True)

    metadata = models.JSONField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    problems = models.JSONField(default=list, blank=True)
    raw = models.JSONField(default=dict)

    # Sync bookkeeping. observed_at is when the API response behind this row was received: an update
    # carrying an older observation is refused (compare-and-set), so a slow worker cannot undo a newer one.
    observed_at = models.DateTimeField()
    first_seen_at = models.DateTimeField()
    last_synced_at = models.DateTimeField()
    last_changed_at = models.DateTimeField()
    listed = models.BooleanField(
        default=True, help_text="False once the batch has aged out of the API's list."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("connection", "batch_id"), name="unique_batch_per_connection")
        ]
        indexes = [
            models.Index(fields=("-created_at", "-id"), name="batch_newest_first"),
            models.Index(fields=("status", "-created_at"), name="batch_status_created"),
            models.Index(fields=("connection", "-created_at"), name="batch_connection_created"),
            models.Index(
                fields=("connection", "created_at"),
                condition=Q(is_terminal=False),
                name="batch_active_by_connection",
            ),
            models.Index(fields=("-done_ratio", "-id"), name="batch_progress"),
            models.Index(fields=("status", "-done_ratio", "-id"), name="batch_status_progress"),
            models.Index(fields=("endpoint",), name="batch_endpoint"),
            models.Index(fields=("model",), name="batch_model"),
        ]

    def __str__(self) -> str:
        return self.batch_id

    @property
    def pending_requests(self) -> int:
        return max(self.total_requests - self.completed_requests - self.failed_requests, 0)

    @property
    def progress(self) -> Progress:
        return Progress.of(self.completed_requests, self.failed_requests, self.total_requests)

    @property
    def is_active(self) -> bool:
        return not self.is_terminal

    @property
    def can_cancel(self) -> bool:
        return self.status in CANCELLABLE_STATUSES

    def is_stalled(self, now: datetime, after: timedelta) -> bool:
        """In progress, yet no request finished for `after`."""
        return is_stalled(self.status, self.last_progress_at, self.in_progress_at, now, after)

    @property
    def eta_after_expiry(self) -> bool:
        return bool(self.eta_at and self.expires_at and self.eta_at > self.expires_at)


@dataclass(frozen=True)
class Progress:
    """Bar segments in percent. Done is what the API finished; finalizing is not shown as done."""

    completed: int
    failed: int
    total: int
    completed_pct: float
    failed_pct: float
    done_pct: int

    @classmethod
    def of(cls, completed: int, failed: int, total: int) -> Progress:
        if total <= 0:
            return cls(completed, failed, total, 0.0, 0.0, 0)
        completed_pct = min(max(completed, 0) * 100 / total, 100.0)
        failed_pct = min(max(failed, 0) * 100 / total, 100.0 - completed_pct)
        # Round down so that 99.6 % never reads as 100 %.
        done_pct = int(completed_pct + failed_pct)
        return cls(completed, failed, total, round(completed_pct, 2), round(failed_pct, 2), done_pct)

    @property
    def waiting(self) -> bool:
        return self.total <= 0

    @property
    def remaining(self) -> int:
        return max(self.total - self.completed - self.failed, 0)

    @property
    def summary(self) -> str:
        return f"{self.completed} completed, {self.failed} failed, {self.remaining} remaining of {self.total}"

    @property
    def done(self) -> int:
        return self.completed + self.failed

    @property
    def completed_width(self) -> str:
        return f"{self.completed_pct:.2f}%"

    @property
    def failed_width(self) -> str:
        return f"{self.failed_pct:.2f}%"


class BatchStatusChange(models.Model):
    """One observed status change. A batch enters each status at most once, which makes
    (batch, new_status) a natural key: two workers recording the same change write one row."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(max_length=40, blank=True)
    new_status = models.CharField(max_length=40)
    observed_at = models.DateTimeField()
    # The API's own timestamp for entering new_status (in_progress_at for in_progress, ...), if any.
    api_timestamp = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("observed_at", "id")
        constraints = [models.UniqueConstraint(fields=("batch", "new_status"), name="one_change_per_status")]

    def __str__(self) -> str:
        return f"{self.old_status or '(new)'} -> {self.new_status}"


class ProgressSnapshot(models.Model):
    """Request counts at a moment, written only when they changed. Counts only grow, so
    (batch, completed, failed, total) identifies a snapshot and duplicates are refused."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField()
    completed = models.IntegerField()
    failed = models.IntegerField()
    total = models.IntegerField()

    class Meta:
        ordering = ("taken_at", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("batch", "completed", "failed", "total"), name="one_snapshot_per_count"
            )
        ]

    def __str__(self) -> str:
        return f"{self.completed}+{self.failed}/{self.total} at {self.taken_at:%H:%M:%S}"


class CancelRequest(models.Model):
    """Who asked to cancel which batch, when, and what the API answered."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="cancel_requests")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_at = models.DateTimeField()
    succeeded = models.BooleanField()
    message = models.TextField()

    class Meta:
        ordering = ("-requested_at",)

    def __str__(self) -> str:
        return f"cancel {self.batch} by {self.user} at {self.requested_at:%Y-%m-%d %H:%M:%S}"
