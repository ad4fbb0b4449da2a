"""Writing observations of API batches to the database: every hand-written statement of the sync and
every value encoding it does itself live here.

Each table the sync inserts into is described once, by an ordered list of columns with the getter
that gives each one's value; the INSERT statement and the rows it is given are both built from that
list, so the two cannot drift. Updates go through the ORM with the same getters.

Every write is safe against a concurrent worker doing the same work: rows are updated with
compare-and-set on the observation time, and history rows have natural keys so a duplicate is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal

from django.db import connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.options import Options

from batches import live
from batches.api.objects import BATCH_TIMESTAMP_FIELDS, ApiBatch
from batches.eta import estimate
from batches.models import Batch, BatchStatusChange, ProgressSnapshot
from batches.statuses import STATUS_TIMESTAMP_FIELD

# A batch's cost in micro-dollars from its observation, or None when it has none (no usage yet, or its
# model has no price). The sync passes spend.costs.Pricer, loaded once per run; the writer only calls it.
Pricing = Callable[[ApiBatch], int | None]


def unpriced(api_batch: ApiBatch) -> int | None:
    """No cost: for observations whose rows do not carry one (history rows, or data that is priced
    afterwards in bulk)."""
    return None


# When progress was last seen, the rate it implies and the ETA: derived from an observation and the
# one before it (see _progress); the values of the three _PROGRESS_COLUMN_NAMES.
ProgressColumns = tuple[datetime | None, float | None, datetime | None]
_NO_PROGRESS: ProgressColumns = (None, None, None)


@dataclass(slots=True)
class Observation:
    """One API batch as seen at one time, with what its rows need besides the batch itself."""

    api: ApiBatch
    # The observation time as a statement parameter: encoded once per page, not once per column.
    at: Any
    connection_pk: int = 0
    pk: int = 0  # the batch's row, once stored
    old_status: str = ""  # the stored status it changes from; "" for a batch first seen
    progress: ProgressColumns = _NO_PROGRESS
    price: Pricing = unpriced


Encoding = Literal["datetime", "json"]


@dataclass(frozen=True, slots=True)
class Column:
    """A model field an observation writes, how its value is got, and whether it is encoded for SQL
    (values without an encoding go to the driver as they are)."""

    name: str
    get: Callable[[Observation], Any]
    encoding: Encoding | None = None


# --- the columns -------------------------------------------------------------------------------


def _counts(api_batch: ApiBatch) -> tuple[int, int, int]:
    """Completed, failed and total requests; zeros when the API sends no counts."""
    counts = api_batch.request_counts
    return (counts.completed, counts.failed, counts.total) if counts else (0, 0, 0)


def _done_ratio(done: int, total: int) -> float:
    return min(max(done / total, 0.0), 1.0) if total > 0 else 0.0


def _done_ratio_of(o: Observation) -> float:
    completed, failed, total = _counts(o.api)
    return _done_ratio(completed + failed, total)


def _usage(name: str) -> Callable[[Observation], int | None]:
    def get(o: Observation) -> int | None:
        usage = o.api.usage
        return getattr(usage, name) if usage else None

    return get


def _errors(o: Observation) -> list[dict[str, Any]]:
    return [{"code": e.code, "message": e.message, "param": e.param, "line": e.line} for e in o.api.errors]


# The Batch columns that an API batch determines: written by inserts and by updates alike.
API_COLUMNS: tuple[Column, ...] = (
    # attrgetter where it serves: these run for every column of every batch of every page.
    Column("status", attrgetter("api.status")),
    Column("is_terminal", attrgetter("api.is_terminal")),
    Column("endpoint", lambda o: o.api.endpoint or ""),
    Column("model", lambda o: o.api.model or ""),
    Column("completion_window", lambda o: o.api.completion_window or ""),
    Column("input_file_id", lambda o: o.api.input_file_id or ""),
    Column("output_file_id", lambda o: o.api.output_file_id or ""),
    Column("error_file_id", lambda o: o.api.error_file_id or ""),
    *(Column(name, attrgetter(f"api.{name}"), "datetime") for name in BATCH_TIMESTAMP_FIELDS),
    Column("total_requests", lambda o: o.api.request_counts.total if o.api.request_counts else 0),
    Column("completed_requests", lambda o: o.api.request_counts.completed if o.api.request_counts else 0),
    Column("failed_requests", lambda o: o.api.request_counts.failed if o.api.request_counts else 0),
    Column("done_ratio", _done_ratio_of),
    *(
        Column(f"{name}_tokens", _usage(f"{name}_tokens"))
        for name in ("input", "cached", "output", "reasoning", "total")
    ),
    Column("metadata", attrgetter("api.metadata"), "json"),
    Column("errors", _errors, "json"),
    Column("problems", lambda o: list(o.api.problems), "json"),
    Column("raw", attrgetter("api.raw"), "json"),
    # Priced as it is written, so that a batch is never stored with usage but without its cost and no
    # second statement per page goes back to price it (spend.costs.Pricer).
    Column("cost_micros", lambda o: o.price(o.api)),
)
# Derived from the observation and its predecessor (see _progress).
_PROGRESS_COLUMN_NAMES: tuple[str, ...] = ("last_progress_at", "rate_per_minute", "eta_at")


@dataclass(frozen=True)
class Insert:
    """INSERT ... ON CONFLICT DO NOTHING into a model's table: the statement and its rows, both from
    one ordered list of columns."""

    model: type[models.Model]
    columns: tuple[Column, ...]

    def sql(self, db: BaseDatabaseWrapper) -> str:
        """Both SQLite (3.24+) and PostgreSQL accept this statement as written."""
        quote = db.ops.quote_name
        meta = self.model._meta
        return "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING".format(
            quote(meta.db_table),
            ", ".join(quote(_column(meta, column.name)) for column in self.columns),
            ", ".join(["%s"] * len(self.columns)),
        )

    def rows(self, observations: Sequence[Observation], adapt: _Adapters) -> list[tuple[Any, ...]]:
        getters = [_encoded(column, adapt) for column in self.columns]
        return [tuple([get(o) for get in getters]) for o in observations]


# A first observation writes every Batch column but the primary key.
NEW_BATCH = Insert(
    Batch,
    (
        Column("connection", attrgetter("connection_pk")),
        Column("batch_id", attrgetter("api.id")),
        *API_COLUMNS,
        # Progress was seen now, if at all (at is already encoded).
        Column("last_progress_at", lambda o: o.at if o.progress[0] else None),
        Column("rate_per_minute", lambda o: o.progress[1]),
        Column("eta_at", lambda o: o.progress[2], "datetime"),
        Column("observed_at", attrgetter("at")),
        Column("first_seen_at", attrgetter("at")),
        Column("last_synced_at", attrgetter("at")),
        Column("last_changed_at", attrgetter("at")),
        Column("listed", lambda o: True),
        # Housekeeping's mark (housekeeping/services.py): a batch first seen has not been thinned.
        Column("snapshots_thinned_at", lambda o: None),
    ),
)


def _api_timestamp(o: Observation) -> datetime | None:
    stamp_field = STATUS_TIMESTAMP_FIELD.get(o.api.status)
    return getattr(o.api, stamp_field) if stamp_field else None


STATUS_CHANGE = Insert(
    BatchStatusChange,
    (
        Column("batch", attrgetter("pk")),
        Column("old_status", attrgetter("old_status")),
        Column("new_status", attrgetter("api.status")),
        Column("observed_at", attrgetter("at")),
        Column("api_timestamp", _api_timestamp, "datetime"),
    ),
)
SNAPSHOT = Insert(
    ProgressSnapshot,
    (
        Column("batch", attrgetter("pk")),
        Column("taken_at", attrgetter("at")),
        Column("completed", lambda o: _counts(o.api)[0]),
        Column("failed", lambda o: _counts(o.api)[1]),
        Column("total", lambda o: _counts(o.api)[2]),
    ),
)


def values(columns: Sequence[Column], o: Observation) -> dict[str, Any]:
    """The columns' values by field name, unencoded: what the ORM is given."""
    return {column.name: column.get(o) for column in columns}


# --- value encodings ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Adapters:
    """How datetimes and JSON become parameters of a statement."""

    datetime: Callable[[datetime | None], Any]
    json: Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


# For the ORM, which converts values itself.
PYTHON = _Adapters(datetime=_same, json=_same)


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


# Both encodings earn their place (2026-12-01, CPU time, as the machine was shared): bench_sync's full
# sync of 10,000 batches / the SDK's list was 1.16 and 1.22 with them, 1.42 and 1.52 with Django's own
# conversions instead (two runs each). The database writes alone (benchmarks/speed_tricks.py encodings,
# medians of 7 rounds): 0.89 s with both, 0.97 s with the datetime one only, 0.95 s with the JSON one
# only, 1.04 s with neither.
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


def _encoded(column: Column, adapt: _Adapters) -> Callable[[Observation], Any]:
    """The column's getter, followed by its encoding if it has one."""
    get = column.get
    if column.encoding is None:
        return get
    encode = adapt.datetime if column.encoding == "datetime" else adapt.json
    return lambda o: encode(get(o))


# --- statements --------------------------------------------------------------------------------


def _insert_ignoring_conflicts(
    db: BaseDatabaseWrapper, insert: Insert, observations: Sequence[Observation], adapt: _Adapters
) -> None:
    """Many rows in one prepared statement, without building model instances.

    bulk_create spends most of a first sync preparing 40 columns x thousands of rows through the
    generic field machinery (measured: 62 % of the sync, of which SQLite itself is a fifth). Here the
    rows come already converted (see _Adapters) and go out as one prepared statement.
    """
    if not observations:
        return
    # Callers write a page in one transaction; this only makes sure no row becomes a commit of its own.
    with transaction.atomic(using=db.alias, savepoint=False), db.cursor() as cursor:
        cursor.executemany(insert.sql(db), insert.rows(observations, adapt))


# What an update compares with and derives from (raw, the counts in it, when progress was last seen).
_STORED_FIELDS: tuple[str, ...] = ("id", "batch_id", "status", "raw", "observed_at", "last_progress_at")


def _column(meta: Options[Any], name: str) -> str:
    """The database column of a field stored in the model's own table."""
    field = meta.get_field(name)
    if not isinstance(field, models.Field) or field.column is None:
        raise TypeError(f"{meta.label}.{name} has no column of its own")
    return field.column


def _select_by_batch_id(db: BaseDatabaseWrapper, fields: Sequence[str], count: int) -> str:
    """SELECT these fields of some of a connection's batches; the parameters are the connection's
    primary key, then `count` API ids. Twice a page, the ORM took longer to build such a query than
    the database took to answer it."""
    quote = db.ops.quote_name
    meta = Batch._meta
    return "SELECT {} FROM {} WHERE {} = %s AND {} IN ({})".format(
        ", ".join(quote(_column(meta, name)) for name in fields),
        quote(meta.db_table),
        quote(_column(meta, "connection")),
        quote(_column(meta, "batch_id")),
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


# --- writing a page ----------------------------------------------------------------------------


@dataclass
class Written:
    """What writing a page did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    seen_ids: set[str] = field(default_factory=set)
    # The rows inserted or updated, whose spend-page copy the sync then refreshes (spend.costs).
    changed_pks: list[int] = field(default_factory=list)


def _progress(
    api_batch: ApiBatch,
    now: datetime,
    *,
    previous_done: int | None = None,
    previous_at: datetime | None = None,
) -> ProgressColumns:
    """When progress was last seen, and the rate and ETA it implies."""
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


def write_page(
    connection_pk: int, api_batches: Sequence[ApiBatch], observed_at: datetime, *, price: Pricing
) -> Written:
    """Write one page of observations, in the caller's transaction, each batch with its cost by
    `price`. Idempotent, and a stale observation never overwrites a newer one."""
    written = Written()
    if not api_batches:
        return written
    db = connections[router.db_for_write(Batch)]
    adapt = _adapters(db)
    observed_param = adapt.datetime(observed_at)
    by_id = {b.id: b for b in api_batches}
    written.seen_ids = set(by_id)
    existing = _stored_rows(db, connection_pk, list(by_id))
    # History rows have natural keys, so a duplicate from a concurrent worker is dropped on insert.
    changes: list[Observation] = []
    snapshots: list[Observation] = []

    new_ids = [batch_id for batch_id in by_id if batch_id not in existing]
    if new_ids:
        # Conflicts are ignored: another worker may insert the same new batch at the same time.
        _insert_ignoring_conflicts(
            db,
            NEW_BATCH,
            [
                Observation(
                    by_id[batch_id],
                    observed_param,
                    connection_pk=connection_pk,
                    progress=_progress(by_id[batch_id], observed_at),
                    price=price,
                )
                for batch_id in new_ids
            ],
            adapt,
        )
        for batch_id, pk in _stored_pks(db, connection_pk, new_ids).items():
            written.changed_pks.append(pk)
            api_batch = by_id[batch_id]
            first = Observation(api_batch, observed_param, pk=pk)
            changes.append(first)
            # A batch first seen finished has no progress history worth a snapshot.
            if not api_batch.is_terminal:
                snapshots.append(first)
        written.created = len(new_ids)

    unchanged_pks: list[int] = []
    for batch_id, row in existing.items():
        api_batch = by_id[batch_id]
        if row.raw == api_batch.raw:
            unchanged_pks.append(row.id)
            continue
        seen = Observation(api_batch, observed_param, pk=row.id, old_status=row.status, price=price)
        columns = values(API_COLUMNS, seen)
        counts_changed = _counts_changed(row.raw, api_batch)
        if counts_changed:
            old_counts = row.raw.get("request_counts") or {}
            progress = _progress(
                api_batch,
                observed_at,
                previous_done=(old_counts.get("completed") or 0) + (old_counts.get("failed") or 0),
                previous_at=row.last_progress_at or row.observed_at,
            )
            columns.update(zip(_PROGRESS_COLUMN_NAMES, progress, strict=True))
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
            written.unchanged += 1  # a newer observation is already stored
            continue
        written.updated += 1
        written.changed_pks.append(row.id)
        if row.status != api_batch.status:
            changes.append(seen)
        if counts_changed:
            snapshots.append(seen)

    if unchanged_pks:
        Batch.objects.filter(pk__in=unchanged_pks, observed_at__lt=observed_at).update(
            last_synced_at=observed_at, observed_at=observed_at, listed=True
        )
        written.unchanged += len(unchanged_pks)
    _insert_ignoring_conflicts(db, STATUS_CHANGE, changes, adapt)
    _insert_ignoring_conflicts(db, SNAPSHOT, snapshots, adapt)
    if written.created or written.updated:
        # Open pages learn of it from this counter (batches.live); a refresh that only moved
        # last_synced_at changes nothing a page shows but the relative "synced" time.
        live.bump(connection_pk)
    return written


def _counts_changed(old_raw: dict[str, Any], api_batch: ApiBatch) -> bool:
    old = old_raw.get("request_counts") or {}
    return (old.get("completed"), old.get("failed"), old.get("total")) != _counts(api_batch)
