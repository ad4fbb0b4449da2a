"""An index in the very order the list sorts by (batches/selectors.py: SORTS, _order_by).

The list sorts descending with NULLs last and ascending with NULLs first. SQLite sorts NULLs lowest, so a
plain index already has them there (and SQLite refuses NULLS FIRST/LAST in an index); PostgreSQL sorts
them highest, and uses an index for such an ORDER BY only when the index states the same placement:
without it, every list page on PostgreSQL sorted every batch (docs/query-plans.md, issue 18).
"""

from __future__ import annotations

from typing import Any

from django.db import models


class ListIndex(models.Index):
    """models.Index, whose columns on PostgreSQL say where NULLs go: last when descending ("-field"),
    first when ascending."""

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql" or self.expressions:
            return super().create_sql(model, schema_editor, using=using, **kwargs)
        return schema_editor._create_index_sql(
            model,
            fields=[model._meta.get_field(name) for name, _ in self.fields_orders],
            name=self.name,
            using=using,
            db_tablespace=self.db_tablespace,
            col_suffixes=[
                "DESC NULLS LAST" if order == "DESC" else "NULLS FIRST" for _, order in self.fields_orders
            ],
            opclasses=self.opclasses,
            condition=self._get_condition_sql(model, schema_editor),  # type: ignore[attr-defined]  # Django's own, unstubbed
            **kwargs,
        )
