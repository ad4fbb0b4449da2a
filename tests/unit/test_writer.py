"""The writer's statements and rows come from one list of columns per table: they cannot disagree."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.db import connection

from batches import writer
from batches.api.objects import ApiBatch

INSERTS = [writer.NEW_BATCH, writer.STATUS_CHANGE, writer.SNAPSHOT]
NOW = datetime(2026, 11, 28, 4, 16, 0, 123456, tzinfo=UTC)


def _api_batch() -> ApiBatch:
    return ApiBatch.from_json(
        {
            "id": "batch_writer",
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "model": "gpt-4o-mini",
            "input_file_id": "file-in",
            "completion_window": "24h",
            "status": "in_progress",
            "created_at": 1_764_300_000,
            "in_progress_at": 1_764_300_060,
            "expires_at": 1_764_386_400,
            "request_counts": {"total": 100, "completed": 40, "failed": 2},
            "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
            "metadata": {"team": "search"},
        }
    )


def _observation() -> writer.Observation:
    return writer.Observation(_api_batch(), NOW, connection_pk=3, pk=9, progress=(NOW, 1.5, NOW))


def _sql_columns(sql: str) -> list[str]:
    names = re.fullmatch(r"INSERT INTO \S+ \((.*)\) VALUES \((.*)\) ON CONFLICT DO NOTHING", sql)
    assert names, sql
    return [name.strip().strip('"') for name in names.group(1).split(",")]


@pytest.mark.parametrize("insert", INSERTS, ids=lambda insert: insert.model.__name__)
@pytest.mark.parametrize("adapt", [writer.PYTHON, writer._SQLITE], ids=["python", "sqlite"])
def test_the_statement_and_its_rows_name_the_same_columns_in_the_same_order(insert, adapt):
    sql = insert.sql(connection)
    columns = _sql_columns(sql)
    (row,) = insert.rows([_observation()], adapt)
    assert len(row) == len(columns) == sql.count("%s")
    meta = insert.model._meta
    # Every concrete column but the primary key, each once.
    assert sorted(columns) == sorted(f.column for f in meta.concrete_fields if not f.primary_key)
    # Position by position, the row holds the value of the column the statement names there.
    by_name = writer.values(insert.columns, _observation())
    if adapt is writer.PYTHON:
        expected = {meta.get_field(name).column: value for name, value in by_name.items()}
        assert dict(zip(columns, row, strict=True)) == expected


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="the SQLite encodings are used (and compared) on SQLite only"
)
def test_the_sqlite_encodings_are_what_django_would_store():
    # Django's own conversions for the same values, as the ORM would save them on SQLite.
    from django.db.backends.sqlite3.operations import DatabaseOperations

    from batches.models import Batch

    ops = DatabaseOperations(connection)
    for value in (NOW, NOW.replace(microsecond=0), None):
        assert writer._sqlite_datetime(value) == ops.adapt_datetimefield_value(value)
    raw = Batch._meta.get_field("raw")
    for value in ({"a": [1, "é"]}, [], None, [{"code": None}]):
        assert writer._sqlite_json(value) == raw.get_db_prep_save(value, connection)


def test_updates_write_the_same_api_columns_as_inserts():
    new_batch_names = [column.name for column in writer.NEW_BATCH.columns]
    api_names = [column.name for column in writer.API_COLUMNS]
    start = new_batch_names.index(api_names[0])
    assert new_batch_names[start : start + len(api_names)] == api_names
