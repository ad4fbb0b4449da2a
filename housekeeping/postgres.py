"""Keeping PostgreSQL's indexes of progress snapshots at the size of what they index.

VACUUM (autovacuum) makes the heap space of deleted rows reusable by later inserts, but a B-tree page
is reused only once it is empty. Thinning keeps a few points of every finished batch, spread over its
whole history, so almost no index page empties: the snapshots' indexes would keep the size of every
snapshot ever written. Once they hold several times what their rows need, they are rebuilt with
REINDEX CONCURRENTLY, which does not block the sync's writes. SQLite needs none of this: its B-trees
merge underfull pages as rows go.
"""

from __future__ import annotations

from django.db import connection

from batches.models import ProgressSnapshot

# A fresh index of snapshots takes 20 to 40 bytes a row; this is about three times that.
BLOATED_BYTES_PER_ROW = 100
# Below this an index is too small to bother.
MINIMUM_BYTES = 64 * 2**20


def bloated_indexes() -> list[tuple[str, int]]:
    """(index name, bytes) of the snapshot table's indexes that are due for a rebuild."""
    table = ProgressSnapshot._meta.db_table
    with connection.cursor() as cursor:
        # Fresh row counts for the estimate (a sample: cheap at any size).
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
        cursor.execute(
            "SELECT i.relname, pg_relation_size(i.oid), greatest(t.reltuples, 1) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname = %s",
            [table],
        )
        rows = cursor.fetchall()
    return [
        (name, int(size))
        for name, size, live in rows
        if size >= MINIMUM_BYTES and size / live > BLOATED_BYTES_PER_ROW
    ]


def rebuild_bloated_indexes() -> int:
    """Rebuild what bloated_indexes() names; the bytes given back."""
    freed = 0
    for name, before in bloated_indexes():
        with connection.cursor() as cursor:
            cursor.execute(f"REINDEX INDEX CONCURRENTLY {connection.ops.quote_name(name)}")
            cursor.execute("SELECT pg_relation_size(%s::regclass)", [name])
            freed += before - int(cursor.fetchone()[0])
    return freed
