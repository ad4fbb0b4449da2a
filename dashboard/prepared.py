"""ORM queries compiled once and then run with new parameters.

Django compiles a queryset to SQL each time it is evaluated. For the two queries every poll runs (the
signed-in user with their role, and the polled row) compiling cost more than running them on the
database, and polls are most of what the server does. A PreparedQuery keeps the ORM's definition of
the query and its conversion of column values to Python, and skips only the compiling.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.sql.compiler import SQLCompiler

M = TypeVar("M", bound=Model)


class PreparedQuery(Generic[M]):
    """`build(marker)` returns the queryset with `marker` where its one integer parameter goes, e.g.
    `lambda pk: Batch.objects.filter(pk=pk)`. The marker must appear exactly once among the compiled
    statement's parameters; other parameters (constants of the query) are kept as compiled.

    Only plain model querysets (optionally with annotations; no select_related, no prefetch) are
    supported, and the first matching row is returned."""

    # Stands for the parameter while compiling: an integer no query holds as a constant, and inside
    # a 32-bit column's range (Django compiles an out-of-range lookup on PostgreSQL to "no rows").
    MARKER = -2_076_543_219

    def __init__(self, build: Callable[[Any], QuerySet[M]]) -> None:
        self._build = build
        self._compiled: dict[str, _Compiled[M]] = {}
        self._lock = threading.Lock()

    def first(self, value: Any, using: str = DEFAULT_DB_ALIAS) -> M | None:
        compiled = self._compiled.get(using) or self._compile(using)
        params = list(compiled.params)
        params[compiled.marker_index] = value
        with connections[using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        (row,) = compiled.compiler.apply_converters([row], compiled.converters)
        instance = compiled.model.from_db(using, compiled.init_list, row[compiled.start : compiled.end])
        for name, position in compiled.annotations.items():
            setattr(instance, name, row[position])
        return instance

    def _compile(self, using: str) -> _Compiled[M]:
        with self._lock:
            if using in self._compiled:
                return self._compiled[using]
            queryset = self._build(self.MARKER)
            compiler = queryset.query.get_compiler(using=using)
            sql, params = compiler.as_sql()
            if list(params).count(self.MARKER) != 1:
                raise ValueError(f"the marker must be the one variable parameter, got {params!r}")
            klass_info = compiler.klass_info
            if klass_info is None or compiler.query.select_related or klass_info.get("related_klass_infos"):
                raise ValueError("only plain model querysets can be prepared")
            fields = klass_info["select_fields"]
            start, end = fields[0], fields[-1] + 1
            compiled = _Compiled(
                sql=sql,
                params=tuple(params),
                marker_index=list(params).index(self.MARKER),
                compiler=compiler,
                converters=compiler.get_converters(
                    [column[0] for column in compiler.select[: compiler.col_count]]
                ),
                model=klass_info["model"],
                init_list=[column[0].target.attname for column in compiler.select[start:end]],
                start=start,
                end=end,
                annotations=dict(compiler.annotation_col_map),
            )
            self._compiled[using] = compiled
            return compiled


@dataclass(frozen=True)
class _Compiled(Generic[M]):
    sql: str
    params: tuple[Any, ...]
    marker_index: int
    compiler: SQLCompiler
    converters: dict[int, Any]
    model: type[M]
    init_list: list[str]
    start: int
    end: int
    annotations: dict[str, int]
