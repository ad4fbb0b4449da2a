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
from django.db.models.functions import Coalesce

from batches.indexes import ListIndex
from batches.statuses import CANCELLABLE_STATUSES, STATUS_TIMESTAMP_FIELD, TERMINAL_STATUSES


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
    # Usage x price in micro-dollars, written by spend.costs at sync time and after a price change;
    # NULL while the batch has no usage or its model no price ("no price", never $0).
    cost_micros = models.BigIntegerField(null=True, blank=True)

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
    # When housekeeping thinned the progress snapshots of this finished batch (housekeeping/thinning.py).
    snapshots_thinned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("connection", "batch_id"), name="unique_batch_per_connection")
        ]
        # Every sort of the list has its index, in its exact order (ListIndex: where NULLs go).
        indexes = [
            ListIndex(fields=("-created_at", "-id"), name="batch_newest_first"),
            ListIndex(fields=("status", "-created_at", "-id"), name="batch_status_created"),
            ListIndex(fields=("connection", "-created_at", "-id"), name="batch_connection_created"),
            models.Index(
                fields=("connection", "created_at"),
                condition=Q(is_terminal=False),
                name="batch_active_by_connection",
            ),
            ListIndex(fields=("-done_ratio", "-id"), name="batch_progress"),
            ListIndex(fields=("status", "-done_ratio", "-id"), name="batch_status_progress"),
            # The list filtered on an endpoint or a model, newest first, without sorting every match;
            # the filter menus read their distinct values from them too.
            ListIndex(fields=("endpoint", "-created_at", "-id"), name="batch_endpoint_created"),
            ListIndex(fields=("model", "-created_at", "-id"), name="batch_model_created"),
            # The week's outcomes (history.outcomes_by_day): batches by when they finished, the same
            # expression. Without it PostgreSQL read the whole table for that chart at a year's size
            # (bench_year.py, docs/query-plans.md).
            models.Index(
                Coalesce(*(STATUS_TIMESTAMP_FIELD[status] for status in TERMINAL_STATUSES)),
                name="batch_finished_at",
            ),
            # Housekeeping's search for finished batches whose snapshots are still to thin.
            models.Index(
                fields=("id",),
                condition=Q(is_terminal=True, snapshots_thinned_at__isnull=True),
                name="batch_snapshots_to_thin",
            ),
            ListIndex(fields=("-cost_micros", "-id"), name="batch_cost"),
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

    # No index of its own: one_snapshot_per_count begins with the batch, and serves every read of a
    # batch's snapshots (a finished batch keeps a few hundred, sorted by time in the query; an index on
    # (batch, taken_at) would cost a third more bytes per row for that sort: benchmarks/bench_year.py).
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="snapshots", db_index=False)
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


class BulkCancel(models.Model):
    """An operator's request to cancel many batches at once. A Celery task works through its items;
    both live here, not in a worker's memory, so progress survives restarts and every web process
    shows the same. The idempotency key comes from the confirmation form: a replayed or double-clicked
    POST finds the same request instead of starting a second one."""

    idempotency_key = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()
    # What was selected, in words ("3 selected batches", "every batch matching status=in_progress").
    selection = models.CharField(max_length=500)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Compare-and-set lease of the one task working on it: another run waits until it expires, so a
    # redelivered or duplicated task never works through the same items at the same time.
    running_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"bulk cancel {self.pk}: {self.selection}"


class BulkCancelItem(models.Model):
    """One batch of a bulk cancel and where it stands."""

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        # Claimed by a task (compare-and-set from pending) and being sent to the API.
        SENDING = "sending", "sending"
        DONE = "done", "done"
        ALREADY_FINISHED = "already_finished", "already finished"
        REFUSED = "refused", "refused"
        FAILED = "failed", "failed"

    OPEN_STATES = (State.PENDING, State.SENDING)

    bulk = models.ForeignKey(BulkCancel, on_delete=models.CASCADE, related_name="items")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # After a 429: not sent again before this (the API's retry-after).
    not_before = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The token of the run that claimed it: only that run may write its answer.
    claim = models.CharField(max_length=32, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ("pk",)
        constraints = [
            models.UniqueConstraint(fields=("bulk", "batch"), name="bulk_cancel_item_once_per_batch"),
            # Two bulk requests (two tabs) never both hold the same batch open: it is cancelled once.
            models.UniqueConstraint(
                fields=("batch",),
                condition=Q(state__in=("pending", "sending")),
                name="bulk_cancel_one_open_item_per_batch",
            ),
        ]
        indexes = [models.Index(fields=("bulk", "state"), name="bulk_cancel_item_state")]

    def __str__(self) -> str:
        return f"{self.batch_id} in bulk cancel {self.bulk_id}: {self.state}"
