"""Keeping the database a faithful mirror of the API: plain functions, no Celery inside.

Every write is safe against a concurrent worker doing the same work: rows are updated with
compare-and-set on the observation time, and history rows have natural keys so a duplicate is refused.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, models, router, transaction
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
from batches.api_client import (
    BatchPage as APIBatchPage,
)
from batches.eta import estimate
from batches.models import Batch, BatchStatusChange, Connection, ProgressSnapshot
from dashboard import outbound
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
    skipped: int = 0  # list items that were not batch objects with an id (see BatchPage.skipped)
    unsaved: int = 0  # batches the database refused (see upsert_batches); logged, tried again next run
    seen_ids: set[str] = field(default_factory=set)

    def add(self, other: SyncResult) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.unsaved += other.unsaved
        self.seen_ids |= other.seen_ids


def _note_skipped(connection: Connection, page: APIBatchPage, total: SyncResult) -> None:
    if page.skipped:
        total.skipped += len(page.skipped)
        logger.warning(
            "sync of %s: skipped %d malformed list item(s): %s",
            connection.name,
            len(page.skipped),
            "; ".join(page.skipped)[:500],
        )


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
        # Checked again at use: the rule may have tightened since the connection was saved.
        refused = secrets.env_name_refusal(connection.api_key_env)
        if refused:
            raise ConnectionNotConfigured(f"Connection {connection.name!r}: {refused}")
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


def may_reach_internal_addresses(connection: Connection) -> bool:
    # The environment's connection is the operator's own choice (and `make run` points it at the
    # simulator on loopback); connections added by admins reach internal addresses only if allowed.
    return connection.from_environment or settings.DASHBOARD_ALLOW_INTERNAL_API_URLS


def client_for(connection: Connection) -> BatchAPIClient:
    """A client whose every request goes to the address checked here (see dashboard/outbound.py)."""
    config = client_config_for(connection)
    transport = outbound.PinnedTransport(
        allow_internal=may_reach_internal_addresses(connection), verify=outbound.ssl_context()
    )
    try:
        transport.pin(config.base_url)
    except outbound.Refused as error:
        transport.close()
        raise ConnectionNotConfigured(
            f"Connection {connection.name!r}: {error}; set DASHBOARD_ALLOW_INTERNAL_API_URLS=1 to allow "
            "gateways on the internal network."
        ) from None
    return BatchAPIClient(config, transport=transport)


# --- mapping an API batch onto columns ---------------------------------------------------------

# The Batch columns that an API batch determines, in the order _api_values gives them.
_API_COLUMNS: tuple[str, ...] = (
    "status",
    "is_terminal",
    "endpoint",
    "model",
    "completion_window",
    "input_file_id",
    "output_file_id",
    "error_file_id",
    *BATCH_TIMESTAMP_FIELDS,
    "total_requests",
    "completed_requests",
    "failed_requests",
    "done_ratio",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "metadata",
    "errors",
    "problems",
    "raw",
)
# Derived from the observation and its predecessor; the order _progress gives them.
_PROGRESS_COLUMNS: tuple[str, ...] = ("last_progress_at", "rate_per_minute", "eta_at")
# A first observation writes every Batch column but the primary key, in the order of _new_batch_row.
_NEW_BATCH_COLUMNS: tuple[str, ...] = (
    "connection",
    "batch_id",
    *_API_COLUMNS,
    *_PROGRESS_COLUMNS,
    "observed_at",
    "first_seen_at",
    "last_synced_at",
    "last_changed_at",
    "listed",
)
_STATUS_CHANGE_COLUMNS: tuple[str, ...] = (
    "batch",
    "old_status",
    "new_status",
    "observed_at",
    "api_timestamp",
)
_SNAPSHOT_COLUMNS: tuple[str, ...] = ("batch", "taken_at", "completed", "failed", "total")
_NO_USAGE: tuple[None, ...] = (None,) * 5
_timestamps = operator.attrgetter(*BATCH_TIMESTAMP_FIELDS)


@dataclass(frozen=True, slots=True)
class _Adapters:
    """How datetimes and JSON become parameters of a statement."""

    datetime: Callable[[datetime | None], Any]
    json: Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


# For the ORM, which converts values itself.
_PYTHON = _Adapters(datetime=_same, json=_same)


def _sqlite_datetime(value: datetime | None) -> str | None:
    # What Django's SQLite backend stores for an aware datetime: naive UTC text, which for the UTC
    # datetimes that the API client and timezone.now() give is isoformat without its "+00:00".
    if value is None:
        return None
    if value.tzinfo is UTC:
        return value.isoformat(" ")[:-6]
    return str(value.astimezone(UTC).replace(tzinfo=None))


def _sqlite_json(value: Any) -> str | None:
    # What Django's SQLite backend stores: json.dumps with its defaults, None as SQL NULL. Most
    # batches have no errors and no problems, and an empty list needs no encoder.
    if value is None:
        return None
    if value == []:
        return "[]"
    return json.dumps(value)


# On SQLite, Django's generic path for datetimes and JSON was a third of a first sync's time.
_SQLITE = _Adapters(datetime=_sqlite_datetime, json=_sqlite_json)


def _adapters(db: BaseDatabaseWrapper) -> _Adapters:
    """The backend's own conversions, for parameters of raw statements."""
    # _sqlite_datetime writes UTC: right unless DATABASES sets another TIME_ZONE for the database.
    if db.vendor == "sqlite" and db.timezone is UTC:
        return _SQLITE
    # Every JSON column written here has the default encoder, so one field's conversion serves all.
    json_field = Batch._meta.get_field("raw")
    return _Adapters(
        datetime=db.ops.adapt_datetimefield_value,
        json=lambda value: json_field.get_db_prep_save(value, db),
    )


def _counts(api_batch: APIBatch) -> tuple[int, int, int]:
    """Completed, failed and total requests; zeros when the API sends no counts."""
    counts = api_batch.request_counts
    return (counts.completed, counts.failed, counts.total) if counts else (0, 0, 0)


def _api_values(api_batch: APIBatch, adapt: _Adapters = _PYTHON) -> tuple[Any, ...]:
    """The values of _API_COLUMNS, built in one pass: this runs for every batch of every page."""
    completed, failed, total = _counts(api_batch)
    usage = api_batch.usage
    to_json = adapt.json
    return (
        api_batch.status,
        api_batch.is_terminal,
        api_batch.endpoint or "",
        api_batch.model or "",
        api_batch.completion_window or "",
        api_batch.input_file_id or "",
        api_batch.output_file_id or "",
        api_batch.error_file_id or "",
        *map(adapt.datetime, _timestamps(api_batch)),
        total,
        completed,
        failed,
        _done_ratio(completed + failed, total),
        *(
            (
                usage.input_tokens,
                usage.cached_tokens,
                usage.output_tokens,
                usage.reasoning_tokens,
                usage.total_tokens,
            )
            if usage
            else _NO_USAGE
        ),
        to_json(api_batch.metadata),
        to_json(
            [
                {"code": e.code, "message": e.message, "param": e.param, "line": e.line}
                for e in api_batch.errors
            ]
        ),
        to_json(list(api_batch.problems)),
        to_json(api_batch.raw),
    )


def _columns(api_batch: APIBatch) -> dict[str, Any]:
    return dict(zip(_API_COLUMNS, _api_values(api_batch), strict=True))


def _done_ratio(done: int, total: int) -> float:
    return min(max(done / total, 0.0), 1.0) if total > 0 else 0.0


def _progress(
    api_batch: APIBatch,
    now: datetime,
    *,
    previous_done: int | None = None,
    previous_at: datetime | None = None,
) -> tuple[datetime | None, float | None, datetime | None]:
    """When progress was last seen, and the rate and ETA it implies: the _PROGRESS_COLUMNS."""
    completed, failed, total = _counts(api_batch)
    done = completed + failed
    last_progress_at = now if done else None
    if api_batch.status != "in_progress":
        return last_progress_at, None, None
    try:
        guess = estimate(
            done=done,
            total=total,
            in_progress_at=api_batch.in_progress_at,
            now=now,
            previous_done=previous_done,
            previous_at=previous_at,
        )
    except OverflowError:
        # An end beyond the calendar (millions of requests left at a few an hour): no ETA to show, and
        # no reason to refuse the batch.
        return last_progress_at, None, None
    return last_progress_at, guess.rate_per_minute, guess.eta_at


def _new_batch_row(
    connection_pk: int, api_batch: APIBatch, now: datetime, adapt: _Adapters, now_param: Any
) -> tuple[Any, ...]:
    """The values of _NEW_BATCH_COLUMNS; `now_param` is `now` already adapted (one conversion per page)."""
    last_progress_at, rate_per_minute, eta_at = _progress(api_batch, now)
    return (
        connection_pk,
        api_batch.id,
        *_api_values(api_batch, adapt),
        now_param if last_progress_at else None,
        rate_per_minute,
        adapt.datetime(eta_at),
        now_param,
        now_param,
        now_param,
        now_param,
        True,
    )


def _status_change_row(
    batch_pk: int, old: str, api_batch: APIBatch, adapt: _Adapters, now_param: Any
) -> tuple[Any, ...]:
    """The values of _STATUS_CHANGE_COLUMNS."""
    stamp_field = STATUS_TIMESTAMP_FIELD.get(api_batch.status)
    api_timestamp = getattr(api_batch, stamp_field) if stamp_field else None
    return batch_pk, old, api_batch.status, now_param, adapt.datetime(api_timestamp)


def _snapshot_row(batch_pk: int, api_batch: APIBatch, now_param: Any) -> tuple[Any, ...]:
    """The values of _SNAPSHOT_COLUMNS."""
    return batch_pk, now_param, *_counts(api_batch)


# The same rows by field name, unconverted: what the ORM would be given. The writes below never use
# them; they show (and let a test check) that each fast insert names every column of its model.


def _new_row(connection: Connection, api_batch: APIBatch, observed_at: datetime) -> dict[str, Any]:
    values = _new_batch_row(connection.pk, api_batch, observed_at, _PYTHON, observed_at)
    return dict(zip(_NEW_BATCH_COLUMNS, values, strict=True))


def _status_change(batch_pk: int, old: str, api_batch: APIBatch, now: datetime) -> dict[str, Any]:
    return dict(
        zip(_STATUS_CHANGE_COLUMNS, _status_change_row(batch_pk, old, api_batch, _PYTHON, now), strict=True)
    )


def _snapshot(batch_pk: int, columns: dict[str, Any], now: datetime) -> dict[str, Any]:
    counts = columns["completed_requests"], columns["failed_requests"], columns["total_requests"]
    return dict(zip(_SNAPSHOT_COLUMNS, (batch_pk, now, *counts), strict=True))


# --- writing observations ----------------------------------------------------------------------


def _insert_ignoring_conflicts(
    db: BaseDatabaseWrapper,
    model: type[models.Model],
    fields: Sequence[str],
    rows: list[tuple[Any, ...]],
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING for many rows, without building model instances.

    bulk_create spends most of a first sync preparing 40 columns x thousands of rows through the
    generic field machinery (measured: 62 % of the sync, of which SQLite itself is a fifth). Here the
    rows come already converted (see _Adapters) and go out as one prepared statement.
    Both SQLite (3.24+) and PostgreSQL accept this statement as written.
    """
    if not rows:
        return
    quote = db.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING".format(
        quote(model._meta.db_table),
        ", ".join(quote(model._meta.get_field(name).column) for name in fields),
        ", ".join(["%s"] * len(fields)),
    )
    # Callers write a page in one transaction; this only makes sure no row becomes a commit of its own.
    with transaction.atomic(using=db.alias, savepoint=False), db.cursor() as cursor:
        cursor.executemany(sql, rows)


# What an update compares with and derives from (raw, the counts in it, when progress was last seen).
_STORED_FIELDS: tuple[str, ...] = ("id", "batch_id", "status", "raw", "observed_at", "last_progress_at")


def _select_by_batch_id(db: BaseDatabaseWrapper, fields: Sequence[str], count: int) -> str:
    """SELECT these fields of some of a connection's batches; the parameters are the connection's
    primary key, then `count` API ids. Twice a page, the ORM took longer to build such a query than
    the database took to answer it."""
    quote = db.ops.quote_name
    meta = Batch._meta
    return "SELECT {} FROM {} WHERE {} = %s AND {} IN ({})".format(
        ", ".join(quote(meta.get_field(name).column) for name in fields),
        quote(meta.db_table),
        quote(meta.get_field("connection").column),
        quote(meta.get_field("batch_id").column),
        ", ".join(["%s"] * count),
    )


def _stored_rows(db: BaseDatabaseWrapper, connection_pk: int, batch_ids: Sequence[str]) -> dict[str, Batch]:
    """The rows already stored for these batches, with the _STORED_FIELDS only."""
    sql = _select_by_batch_id(db, _STORED_FIELDS, len(batch_ids))
    # A raw queryset still converts the values (JSON, datetimes) as the fields do.
    rows = Batch.objects.raw(sql, [connection_pk, *batch_ids], using=db.alias)
    return {row.batch_id: row for row in rows}


def _stored_pks(db: BaseDatabaseWrapper, connection_pk: int, batch_ids: Sequence[str]) -> dict[str, int]:
    """The primary keys of those of these batches that are stored, by API id."""
    with db.cursor() as cursor:
        cursor.execute(
            _select_by_batch_id(db, ("batch_id", "id"), len(batch_ids)), [connection_pk, *batch_ids]
        )
        return dict(cursor.fetchall())


# Errors that say the database cannot be used at all, rather than that it refused one row: saving the
# batches one by one would only repeat them, so they fail the run (which then backs off).
_DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def upsert_batches(
    connection: Connection, api_batches: Sequence[APIBatch], *, observed_at: datetime
) -> SyncResult:
    """Write one page of observations. Idempotent, and a stale observation never overwrites a newer one.

    Each batch stands alone: if the page fails to save, its batches are saved one at a time, and one
    that still fails (a value no column can hold, text the database refuses) is skipped, counted in
    `unsaved` and logged, while the rest of the page is saved and the sync goes on."""
    try:
        # One commit per page rather than one per statement.
        with transaction.atomic():
            return _upsert_page(connection, api_batches, observed_at)
    except _DATABASE_UNAVAILABLE:
        raise
    except Exception as error:
        if len(api_batches) == 1:
            return _unsaved(connection, api_batches[0], error)
        logger.warning(
            "sync of %s: a page of %d batches failed to save (%s: %s); saving them one by one",
            connection.name,
            len(api_batches),
            type(error).__name__,
            str(error)[:300],
        )
    result = SyncResult()
    for api_batch in api_batches:
        try:
            with transaction.atomic():
                result.add(_upsert_page(connection, [api_batch], observed_at))
        except _DATABASE_UNAVAILABLE:
            raise
        except Exception as error:
            result.add(_unsaved(connection, api_batch, error))
    return result


def _unsaved(connection: Connection, api_batch: APIBatch, error: Exception) -> SyncResult:
    logger.error(
        "sync of %s: batch %s could not be saved and was skipped (%s: %s)",
        connection.name,
        api_batch.id,
        type(error).__name__,
        str(error)[:300],
        exc_info=error,
    )
    # Seen all the same: a complete walk must not mark it as gone from the API's list.
    return SyncResult(unsaved=1, seen_ids={api_batch.id})


def _upsert_page(
    connection: Connection, api_batches: Sequence[APIBatch], observed_at: datetime
) -> SyncResult:
    result = SyncResult()
    if not api_batches:
        return result
    db = connections[router.db_for_write(Batch)]
    adapt = _adapters(db)
    observed_param = adapt.datetime(observed_at)
    connection_pk = connection.pk
    by_id = {b.id: b for b in api_batches}
    result.seen_ids = set(by_id)
    existing = _stored_rows(db, connection_pk, list(by_id))
    # History rows have natural keys, so a duplicate from a concurrent worker is dropped on insert.
    changes: list[tuple[Any, ...]] = []
    snapshots: list[tuple[Any, ...]] = []

    new_ids = [batch_id for batch_id in by_id if batch_id not in existing]
    if new_ids:
        # Conflicts are ignored: another worker may insert the same new batch at the same time.
        _insert_ignoring_conflicts(
            db,
            Batch,
            _NEW_BATCH_COLUMNS,
            [
                _new_batch_row(connection_pk, by_id[batch_id], observed_at, adapt, observed_param)
                for batch_id in new_ids
            ],
        )
        for batch_id, pk in _stored_pks(db, connection_pk, new_ids).items():
            api_batch = by_id[batch_id]
            changes.append(_status_change_row(pk, "", api_batch, adapt, observed_param))
            # A batch first seen finished has no progress history worth a snapshot.
            if not api_batch.is_terminal:
                snapshots.append(_snapshot_row(pk, api_batch, observed_param))
        result.created = len(new_ids)

    unchanged_pks: list[int] = []
    for batch_id, row in existing.items():
        api_batch = by_id[batch_id]
        if row.raw == api_batch.raw:
            unchanged_pks.append(row.id)
            continue
        columns = _columns(api_batch)
        counts_changed = _counts_changed(row.raw, api_batch)
        if counts_changed:
            old_counts = row.raw.get("request_counts") or {}
            progress = _progress(
                api_batch,
                observed_at,
                previous_done=(old_counts.get("completed") or 0) + (old_counts.get("failed") or 0),
                previous_at=row.last_progress_at or row.observed_at,
            )
            columns.update(zip(_PROGRESS_COLUMNS, progress, strict=True))
        elif api_batch.status != "in_progress":
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
            changes.append(_status_change_row(row.id, row.status, api_batch, adapt, observed_param))
        if counts_changed:
            snapshots.append(_snapshot_row(row.id, api_batch, observed_param))

    if unchanged_pks:
        Batch.objects.filter(pk__in=unchanged_pks, observed_at__lt=observed_at).update(
            last_synced_at=observed_at, observed_at=observed_at, listed=True
        )
        result.unchanged += len(unchanged_pks)
    _insert_ignoring_conflicts(db, BatchStatusChange, _STATUS_CHANGE_COLUMNS, changes)
    _insert_ignoring_conflicts(db, ProgressSnapshot, _SNAPSHOT_COLUMNS, snapshots)
    return result


def _counts_changed(old_raw: dict[str, Any], api_batch: APIBatch) -> bool:
    old = old_raw.get("request_counts") or {}
    return (old.get("completed"), old.get("failed"), old.get("total")) != _counts(api_batch)


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
            _note_skipped(connection, page, total)
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
        _note_skipped(connection, page, total)
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
