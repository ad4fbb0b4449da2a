"""Sessions in the database, read with one plain statement.

Sessions live in the database so that a sign-out ends them in every web process at once (a cache in
one process's memory kept a signed-out cookie working in the others). Every request reads one, row
polls included, and most of that read was Django building the ORM query again each time, not the
database: profiled at about 0.25 ms of a 0.85 ms row poll (benchmarks/bench_poll_load.py, issue 13's
follow-up). This store reads the row with one SQL statement, with the same table and the same expiry
rule as Django's; writing, refreshing and deleting sessions are Django's own, inherited unchanged.

Decoding the row (checking its signature, then JSON) was another twentieth of a page poll, the same
work on the same text every few seconds for every open page. The text is signed and decodes to the
same data every time, so a process remembers the last few hundred it decoded: only sessions of plain
values (a signed-in user's are: ids and hashes), whose copy cannot be changed through the memory.
The session itself is still read from the database every time, so a sign-out ends it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.signals import setting_changed
from django.db import connections, router
from django.dispatch import receiver
from django.utils import timezone


@dataclass(frozen=True, slots=True)
class _Row:
    session_data: str


# Values a session may hold for its decoded form to be remembered (a shallow copy is then a full one).
_PLAIN = (str, int, float, bool, type(None))


class SessionStore(DatabaseSessionStore):
    def decode(self, session_data: bytes | str) -> dict[str, Any]:
        plain = _decoded(type(self), session_data)
        return dict(plain) if plain is not None else super().decode(session_data)

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


@lru_cache(maxsize=512)
def _decoded(store: type[SessionStore], session_data: bytes | str) -> dict[str, Any] | None:
    """The session's data if it holds plain values only (else None: decoded afresh each time)."""
    data = super(SessionStore, store()).decode(session_data)
    return data if data and all(isinstance(value, _PLAIN) for value in data.values()) else None


@receiver(setting_changed)
def _forget_decoded(setting: str, **kwargs: object) -> None:
    # A session signed with a key no longer accepted must stop decoding at once (tests change keys;
    # a deployment that does restarts its processes).
    if setting.startswith("SECRET_KEY"):
        _decoded.cache_clear()
