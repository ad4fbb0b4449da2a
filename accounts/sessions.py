"""Sessions in the database, read with one plain statement.

Sessions live in the database so that a sign-out ends them in every web process at once (a cache in
one process's memory kept a signed-out cookie working in the others). Every request reads one, row
polls included, and most of that read was Django building the ORM query again each time, not the
database: profiled at about 0.25 ms of a 0.85 ms row poll (benchmarks/bench_poll_load.py, issue 13's
follow-up). This store reads the row with one SQL statement, with the same table and the same expiry
rule as Django's; writing, refreshing and deleting sessions are Django's own, inherited unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import connections, router
from django.utils import timezone


@dataclass(frozen=True, slots=True)
class _Row:
    session_data: str


class SessionStore(DatabaseSessionStore):
    def _get_session_from_db(self) -> Any:
        key = self.session_key
        if not key:
            self._session_key = None
            return None
        model = self.model
        connection = connections[router.db_for_read(model)]
        table = connection.ops.quote_name(model._meta.db_table)
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT session_data FROM {table} WHERE session_key = %s AND expire_date > %s",
                [key, now],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return _Row(session_data=row[0])
