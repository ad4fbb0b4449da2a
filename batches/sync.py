"""Keeping the database a faithful mirror of the API: plain functions, no Celery inside.

Every write is safe against a concurrent worker doing the same work: rows are updated with
compare-and-set on the observation time, and history rows have natural keys so a duplicate is refused.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q
from django.utils import timezone

from batches import secrets
from batches.api_client import (
    BATCH_TIMESTAMP_FIELDS,
    APIError,
    BatchAPIClient,
    ClientConfig,
    RateLimitError,
)
from batches.api_client import (
    Batch as APIBatch,
)
from batches.eta import estimate
from batches.models import Batch, BatchStatusChange, Connection, ProgressSnapshot
from dashboard.redaction import register_secret

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
# The API timestamp that marks entering each status, for the status-change rows.
STATUS_TIMESTAMP_FIELD = {
    "validating": "created_at",
    "in_progress": "in_progress_at",
    "finalizing": "finalizing_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelling": "cancelling_at",
    "cancelled": "cancelled_at",
}
# How long a 429 without retry-after, or a failing API, keeps a connection waiting.
DEFAULT_RATE_LIMIT_WAIT = 30.0
MAX_FAILURE_BACKOFF = 300.0
COMPLETE_WALK_INTERVAL = timedelta(hours=6)
ENVIRONMENT_CONNECTION_NAME = "default"


class ConnectionNotConfigured(Exception):
    """The connection has no usable key or URL."""


@dataclass
class SyncResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    api_calls: int = 0
    pages: int = 0
    seen_ids: set[str] = field(default_factory=set)

    def add(self, other: SyncResult) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.seen_ids |= other.seen_ids


def api_key_for(connection: Connection) -> str:
    """The connection's key, from the environment or decrypted from the database; '' if none."""
    if connection.from_environment:
        api_key = settings.OPENAI_API_KEY
    elif connection.api_key_encrypted:
        try:
            api_key = secrets.decrypt(connection.api_key_encrypted)
        except secrets.EncryptionNotConfigured as error:
            raise ConnectionNotConfigured(f"Connection {connection.name!r}: {error}") from None
    elif connection.api_key_env:
        api_key = os.environ.get(connection.api_key_env, "")
    else:
        api_key = ""
    register_secret(api_key)
    return api_key


def client_config_for(connection: Connection) -> ClientConfig:
    if connection.from_environment:
        base_url = settings.OPENAI_BASE_URL
        organization, project = settings.OPENAI_ORG_ID, settings.OPENAI_PROJECT_ID
    else:
        base_url, organization, project = connection.base_url, connection.organization, connection.project
    api_key = api_key_for(connection)
    if not api_key:
        where = (
            f"the environment variable {connection.api_key_env}"
            if connection.api_key_env and not connection.api_key_encrypted
            else "it"
        )
        raise ConnectionNotConfigured(f"Connection {connection.name!r} has no API key: set {where}.")
    if not base_url:
        raise ConnectionNotConfigured(f"Connection {connection.name!r} has no base URL.")
    return ClientConfig(
        base_url=base_url,
        api_key=api_key,
        organization=organization or None,
        project=project or None,
        auth_style="azure" if connection.provider == Connection.Provider.AZURE else "bearer",
        connect_timeout=settings.OPENAI_CONNECT_TIMEOUT,
        read_timeout=settings.OPENAI_READ_TIMEOUT,
        max_retries=settings.OPENAI_MAX_RETRIES,
    )


def client_for(connection: Connection) -> BatchAPIClient:
    return BatchAPIClient(client_config_for(connection))


# --- mapping an API batch onto columns ---------------------------------------------------------


def _columns(api_batch: APIBatch) -> dict[str, Any]:
    counts = api_batch.request_counts
    usage = api_batch.usage
    columns: dict[str, Any] = {
        "status": api_batch.status,
        "is_terminal": api_batch.is_terminal,
        "endpoint": api_batch.endpoint or "",
        "model": api_batch.model or "",
        "completion_window": api_batch.completion_window or "",
        "input_file_id": api_batch.input_file_id or "",
        "output_file_id": api_batch.output_file_id or "",
        "error_file_id": api_batch.error_file_id or "",
        "done_ratio": _done_ratio(counts.completed + counts.failed, counts.total) if counts else 0.0,
        "total_requests": counts.total if counts else 0,
        "completed_requests": counts.completed if counts else 0,
        "failed_requests": counts.failed if counts else 0,
        "input_tokens": usage.input_tokens if usage else None,
        "cached_tokens": usage.cached_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "reasoning_tokens": usage.reasoning_tokens if usage else None,
        "total_tokens": usage.total_tokens if usage else None,
        "metadata": api_batch.metadata,
        "errors": [
            {"code": e.code, "message": e.message, "param": e.param, "line": e.line} for e in api_batch.errors
        ],
        "problems": list(api_batch.problems),
        "raw": api_batch.raw,
    }
    for name in BATCH_TIMESTAMP_FIELDS:
        columns[name] = getattr(api_batch, name)
    return columns


def _done_ratio(done: int, total: int) -> float:
    return min(max(done / total, 0.0), 1.0) if total > 0 else 0.0


def _progress_columns(
    columns: dict[str, Any],
    now: datetime,
    *,
    previous_done: int | None = None,
    previous_at: datetime | None = None,
) -> dict[str, Any]:
    """When progress was last seen, and the rate and ETA it implies."""
    done = columns["completed_requests"] + columns["failed_requests"]
    guess = estimate(
        done=done,
        total=columns["total_requests"],
        in_progress_at=columns["in_progress_at"],
        now=now,
        previous_done=previous_done,
        previous_at=previous_at,
    )
    moving = columns["status"] == "in_progress"
    return {
        "last_progress_at": now if done else None,
        "rate_per_minute": guess.rate_per_minute if moving else None,
        "eta_at": guess.eta_at if moving else None,
    }


def _counts(columns: dict[str, Any]) -> tuple[int, int, int]:
    return columns["completed_requests"], columns["failed_requests"], columns["total_requests"]


def _status_change(batch_pk: int, old: str, api_batch: APIBatch, now: datetime) -> dict[str, Any]:
    stamp_field = STATUS_TIMESTAMP_FIELD.get(api_batch.status)
    return {
        "batch": batch_pk,
        "old_status": old,
        "new_status": api_batch.status,
        "observed_at": now,
        "api_timestamp": getattr(api_batch, stamp_field) if stamp_field else None,
    }


def _snapshot(batch_pk: int, columns: dict[str, Any], now: datetime) -> dict[str, Any]:
    completed, failed, total = _counts(columns)
    return {"batch": batch_pk, "taken_at": now, "completed": completed, "failed": failed, "total": total}


# --- writing observations ----------------------------------------------------------------------


def _new_row(connection: Connection, api_batch: APIBatch, observed_at: datetime) -> dict[str, Any]:
    columns = _columns(api_batch)
    return {
        "connection": connection.pk,
        "batch_id": api_batch.id,
        "observed_at": observed_at,
        "first_seen_at": observed_at,
        "last_synced_at": observed_at,
        "last_changed_at": observed_at,
        "listed": True,
        **columns,
        **_progress_columns(columns, observed_at),
    }


def _sqlite_datetime(value: datetime | None) -> str | None:
    # What Django's SQLite backend stores for an aware datetime: naive UTC text.
    return None if value is None else str(value.astimezone(UTC).replace(tzinfo=None))


def _adapter(field: models.Field, connection: BaseDatabaseWrapper) -> Callable[[Any], Any]:
    """The backend's own conversion of a Python value for this column. On SQLite, datetimes and JSON
    are converted directly: Django's generic path for them was a third of a first sync's time."""
    sqlite = connection.vendor == "sqlite"
    if isinstance(field, models.DateTimeField):
        return _sqlite_datetime if sqlite else connection.ops.adapt_datetimefield_value
    if isinstance(field, models.JSONField):
        if sqlite and field.encoder is None:
            return lambda value: None if value is None else json.dumps(value)
        return lambda value: field.get_db_prep_save(value, connection)
    return lambda value: value


def _insert_ignoring_conflicts(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING for many rows, without building model instances.

    bulk_create spends most of a first sync preparing 47 columns x thousands of rows through the
    generic field machinery (measured: 62 % of the sync, of which SQLite itself is a fifth). This
    converts each value once with the backend's own adapters and sends one prepared statement.
    Both SQLite (3.24+) and PostgreSQL accept this statement as written.
    """
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    fields = [model._meta.get_field(name) for name in rows[0]]
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING".format(
        quote(model._meta.db_table),
        ", ".join(quote(field.column) for field in fields),
        ", ".join(["%s"] * len(fields)),
    )
    adapters = [_adapter(field, connection) for field in fields]
    params = [[adapt(value) for adapt, value in zip(adapters, row.values(), strict=True)] for row in rows]
    # One transaction for all the rows: in autocommit each row would be a commit of its own.
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.executemany(sql, params)


def upsert_batches(
    connection: Connection, api_batches: Sequence[APIBatch], *, observed_at: datetime
) -> SyncResult:
    """Write one page of observations. Idempotent, and a stale observation never overwrites a newer one."""
    # One commit per page rather than one per statement.
    with transaction.atomic():
        return _upsert_page(connection, api_batches, observed_at)


def _upsert_page(
    connection: Connection, api_batches: Sequence[APIBatch], observed_at: datetime
) -> SyncResult:
    result = SyncResult()
    if not api_batches:
        return result
    by_id = {b.id: b for b in api_batches}
    result.seen_ids = set(by_id)
    existing = {
        row.batch_id: row
        for row in Batch.objects.filter(connection=connection, batch_id__in=list(by_id)).only(
            "id", "batch_id", "status", "raw", "observed_at", "listed", "last_progress_at"
        )
    }
    # History rows have natural keys, so a duplicate from a concurrent worker is dropped on insert.
    changes: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []

    new_ids = [batch_id for batch_id in by_id if batch_id not in existing]
    if new_ids:
        # Conflicts are ignored: another worker may insert the same new batch at the same time.
        _insert_ignoring_conflicts(
            Batch, [_new_row(connection, by_id[batch_id], observed_at) for batch_id in new_ids]
        )
        for pk, batch_id in Batch.objects.filter(connection=connection, batch_id__in=new_ids).values_list(
            "id", "batch_id"
        ):
            api_batch = by_id[batch_id]
            changes.append(_status_change(pk, "", api_batch, observed_at))
            # A batch first seen finished has no progress history worth a snapshot.
            if not api_batch.is_terminal:
                snapshots.append(_snapshot(pk, _columns(api_batch), observed_at))
        result.created = len(new_ids)

    unchanged_pks: list[int] = []
    for batch_id, row in existing.items():
        api_batch = by_id[batch_id]
        if row.raw == api_batch.raw:
            unchanged_pks.append(row.id)
            continue
        columns = _columns(api_batch)
        if _counts_changed(row.raw, columns):
            old_counts = row.raw.get("request_counts") or {}
            columns.update(
                _progress_columns(
                    columns,
                    observed_at,
                    previous_done=(old_counts.get("completed") or 0) + (old_counts.get("failed") or 0),
                    previous_at=row.last_progress_at or row.observed_at,
                )
            )
        elif columns["status"] != "in_progress":
            columns.update(rate_per_minute=None, eta_at=None)
        won = Batch.objects.filter(pk=row.id, observed_at__lt=observed_at).update(
            observed_at=observed_at,
            last_synced_at=observed_at,
            last_changed_at=observed_at,
            listed=True,
            **columns,
        )
        if not won:
            result.unchanged += 1  # a newer observation is already stored
            continue
        result.updated += 1
        if row.status != api_batch.status:
            changes.append(_status_change(row.id, row.status, api_batch, observed_at))
        if _counts_changed(row.raw, columns):
            snapshots.append(_snapshot(row.id, columns, observed_at))

    if unchanged_pks:
        Batch.objects.filter(pk__in=unchanged_pks, observed_at__lt=observed_at).update(
            last_synced_at=observed_at, observed_at=observed_at, listed=True
        )
        result.unchanged += len(unchanged_pks)
    if changes:
        _insert_ignoring_conflicts(BatchStatusChange, changes)
    if snapshots:
        _insert_ignoring_conflicts(ProgressSnapshot, snapshots)
    return result


def _counts_changed(old_raw: dict[str, Any], columns: dict[str, Any]) -> bool:
    old = old_raw.get("request_counts") or {}
    return (old.get("completed"), old.get("failed"), old.get("total")) != _counts(columns)


# --- the sync operations -----------------------------------------------------------------------


def full_sync(
    connection: Connection,
    *,
    client: BatchAPIClient | None = None,
    complete: bool | None = None,
    on_page: Callable[[], object] | None = None,
) -> SyncResult:
    """Walk the list newest first. Stops early at a page whose batches are all terminal and unchanged,
    unless this is a complete walk, which also marks the batches the API no longer lists."""
    now = timezone.now()
    if complete is None:
        complete = (
            connection.last_complete_walk_at is None
            or now - connection.last_complete_walk_at > COMPLETE_WALK_INTERVAL
        )
    own_client = client is None
    client = client or client_for(connection)
    calls_before = client.calls
    total = SyncResult()
    reached_end = False
    try:
        for page in client.list_batch_pages(limit=PAGE_SIZE):
            total.pages += 1
            result = upsert_batches(connection, page.data, observed_at=timezone.now())
            total.add(result)
            if on_page:
                on_page()
            if not page.has_more:
                reached_end = True
            if (
                not complete
                and page.data
                and result.created == 0
                and result.updated == 0
                and all(b.is_terminal for b in page.data)
            ):
                break
        else:
            reached_end = True
    finally:
        total.api_calls = client.calls - calls_before
        if own_client:
            client.close()
    if complete and reached_end:
        Batch.objects.filter(connection=connection, listed=True).exclude(batch_id__in=total.seen_ids).update(
            listed=False
        )
        Connection.objects.filter(pk=connection.pk).update(last_complete_walk_at=now)
    return total


def refresh_batch(connection: Connection, batch_id: str, *, client: BatchAPIClient | None = None) -> Batch:
    own_client = client is None
    client = client or client_for(connection)
    try:
        api_batch = client.retrieve_batch(batch_id)
    finally:
        if own_client:
            client.close()
    upsert_batches(connection, [api_batch], observed_at=timezone.now())
    return Batch.objects.get(connection=connection, batch_id=api_batch.id)


def refresh_active(
    connection: Connection,
    *,
    client: BatchAPIClient | None = None,
    on_page: Callable[[], object] | None = None,
) -> SyncResult:
    """Bring every non-terminal batch up to date by the cheaper of two routes:
    list pages down to the oldest active batch, or the first page (for new batches) plus one
    retrieve per active batch."""
    active = list(
        Batch.objects.filter(connection=connection, is_terminal=False)
        .order_by("created_at")
        .values_list("batch_id", "created_at")
    )
    own_client = client is None
    client = client or client_for(connection)
    calls_before = client.calls
    total = SyncResult()
    try:
        if not active:
            _list_until(connection, client, total, stop_at=None, max_pages=1, on_page=on_page)
        else:
            oldest_id, oldest_created = active[0]
            position = (
                Batch.objects.filter(connection=connection, listed=True)
                .filter(Q(created_at__gt=oldest_created) | Q(created_at=oldest_created))
                .count()
            )
            list_route_pages = max(1, math.ceil(position / PAGE_SIZE))
            if list_route_pages <= len(active):
                _list_until(connection, client, total, stop_at=oldest_id, max_pages=None, on_page=on_page)
            else:
                _list_until(connection, client, total, stop_at=None, max_pages=1, on_page=on_page)
                stale = [batch_id for batch_id, _ in active if batch_id not in total.seen_ids]
                for batch_id in stale:
                    observed_at = timezone.now()
                    try:
                        api_batch = client.retrieve_batch(batch_id)
                    except APIError as error:
                        if getattr(error, "status_code", None) == 404:
                            continue  # gone from the API: keep the last known state
                        raise
                    total.add(upsert_batches(connection, [api_batch], observed_at=observed_at))
                    if on_page:
                        on_page()
    finally:
        total.api_calls = client.calls - calls_before
        if own_client:
            client.close()
    return total


def _list_until(
    connection: Connection,
    client: BatchAPIClient,
    total: SyncResult,
    *,
    stop_at: str | None,
    max_pages: int | None,
    on_page: Callable[[], object] | None,
) -> None:
    for page in client.list_batch_pages(limit=PAGE_SIZE):
        total.pages += 1
        total.add(upsert_batches(connection, page.data, observed_at=timezone.now()))
        if on_page:
            on_page()
        if stop_at is not None and stop_at in total.seen_ids:
            return
        if max_pages is not None and total.pages >= max_pages:
            return


# --- connection bookkeeping ----------------------------------------------------------------------


def record_success(connection: Connection) -> None:
    Connection.objects.filter(pk=connection.pk).update(
        last_success_at=timezone.now(), consecutive_failures=0, next_attempt_at=None, last_error=""
    )


def record_failure(connection: Connection, error: Exception) -> datetime:
    """Remember the error and when the next attempt may be made; returns that time."""
    now = timezone.now()
    failures = connection.consecutive_failures + 1
    if isinstance(error, RateLimitError):
        wait = error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_WAIT
    else:
        wait = min(MAX_FAILURE_BACKOFF, settings.SYNC_FAILURE_BACKOFF * 2 ** min(failures - 1, 10))
    next_attempt = now + timedelta(seconds=wait)
    Connection.objects.filter(pk=connection.pk).update(
        last_error_at=now,
        last_error=str(error)[:1000],
        consecutive_failures=failures,
        next_attempt_at=next_attempt,
    )
    return next_attempt


def may_call_api(connection: Connection, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return connection.enabled and (connection.next_attempt_at is None or connection.next_attempt_at <= now)


def claim_due_work(connection: Connection, now: datetime | None = None) -> list[str]:
    """Which of 'refresh' and 'full_sync' are due; each is claimed with compare-and-set so that two
    beat ticks (or two dispatchers) never enqueue the same run twice."""
    now = now or timezone.now()
    if not may_call_api(connection, now):
        return []
    due: list[str] = []
    for kind, field_name, interval in (
        ("full_sync", "next_full_sync_at", connection.full_sync_interval),
        ("refresh", "next_refresh_at", connection.refresh_interval),
    ):
        current = getattr(connection, field_name)
        if current is not None and current > now:
            continue
        # Fixed rate: the next run is due one interval after this one was due, not after the beat tick
        # that noticed it, so the dispatcher's tick does not stretch every interval. After a long
        # pause (a backoff, a stopped beat) the schedule restarts from now rather than catching up.
        step = timedelta(seconds=interval)
        following = current + step if current is not None and current + step > now else now + step
        claimed = Connection.objects.filter(pk=connection.pk, **{field_name: current}).update(
            **{field_name: following}
        )
        if claimed:
            due.append(kind)
    return due


def environment_connection() -> Connection:
    """The connection configured by environment variables; it exists without any set-up (a migration
    creates it, and this recreates it should someone delete it)."""
    connection, _ = Connection.objects.get_or_create(
        name=ENVIRONMENT_CONNECTION_NAME,
        defaults={"from_environment": True, "api_key_env": "OPENAI_API_KEY"},
    )
    return connection


def is_configured(connection: Connection) -> bool:
    """The environment's connection without OPENAI_API_KEY is a placeholder: nothing to sync, nothing
    to report as failing."""
    return not connection.from_environment or bool(settings.OPENAI_API_KEY)


def connections_to_sync() -> Iterable[Connection]:
    environment_connection()
    return [c for c in Connection.objects.filter(enabled=True) if is_configured(c)]
