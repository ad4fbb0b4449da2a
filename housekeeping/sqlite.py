"""Keeping a SQLite database file from only ever growing.

Deleted rows leave free pages inside the file; with auto_vacuum=INCREMENTAL (set for new databases by
dashboard/settings.py's init_command, and for existing ones once by migration 0001 of this app)
`PRAGMA incremental_vacuum(N)` hands N of them back to the file system. Done a step at a time, each a
short write transaction, then the write-ahead log is checkpointed (and kept to journal_size_limit).
On PostgreSQL, autovacuum does the same work by itself.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection, transaction

# Pages freed per statement: 1 MiB at the default page size. Each freed page may mean moving one from
# the end of the file, so the step is kept short: milliseconds of write lock.
PAGES_PER_STEP = 256
# Rows ANALYZE samples per index (SQLite's own advice for `PRAGMA optimize`: a few hundred).
ANALYSIS_LIMIT = 400


def auto_vacuum_mode() -> int:
    """0 none, 1 full, 2 incremental."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA auto_vacuum")
        return int(cursor.fetchone()[0])


def free_pages() -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA freelist_count")
        return int(cursor.fetchone()[0])


def reclaim(
    *, budget: Callable[[], bool] = lambda: False, on_step: Callable[[], object] | None = None
) -> int:
    """Give free pages back to the file system, then checkpoint the log; the number of pages freed.
    Stops early once `budget()` says time is up."""
    freed = 0
    if auto_vacuum_mode() == 2:
        while not budget():
            before = free_pages()
            if before == 0:
                break
            # In an IMMEDIATE transaction (dashboard/settings.py), which waits for the write lock: a
            # statement of its own would start as a reader and, were a sync to commit meanwhile, fail
            # to become a writer ("database is locked") instead of waiting.
            # One page a statement: Python's sqlite3 steps a statement that returns no rows once, and
            # incremental_vacuum frees one page a step, whatever count it is given.
            with transaction.atomic(), connection.cursor() as cursor:
                for _ in range(min(before, PAGES_PER_STEP)):
                    cursor.execute("PRAGMA incremental_vacuum(1)")
            after = free_pages()
            freed += before - after
            if on_step is not None:
                on_step()
            if after >= before:
                break
    checkpoint()
    # Refreshes the planner's statistics where they have drifted (SQLite's advice for periodic
    # maintenance); nothing else does so for a SQLite database. Immediate, as above. ANALYZE holds the
    # write lock while it reads every row of the tables it looks at: unlimited, that was a sync waiting
    # 20.9 s behind the first housekeeping of a year's snapshots (bench_year.py); a sample of
    # ANALYSIS_LIMIT rows per index gives the planner the same choices in milliseconds.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        cursor.execute("PRAGMA optimize")
    return freed


def checkpoint() -> tuple[int, int, int]:
    """Copy what it can of the write-ahead log into the database; (busy, log pages, pages moved).

    PASSIVE, because the FULL, RESTART and TRUNCATE modes hold back every writer while they wait for
    readers, up to the busy timeout (30 s): a sync would wait that long. The log file itself is cut
    back to journal_size_limit (dashboard/settings.py) whenever SQLite restarts it."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        busy, log, moved = cursor.fetchone()
    return int(busy), int(log), int(moved)


def convert_to_incremental() -> bool:
    """Turn auto_vacuum=INCREMENTAL on for a database made without it: it takes a full VACUUM (the
    whole file rewritten, under an exclusive lock), so it runs once, from a migration at a release.
    False when there was nothing to do."""
    if auto_vacuum_mode() == 2:
        return False
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("VACUUM")
    return True
