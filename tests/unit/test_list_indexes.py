"""Every sort of the list is read from its index in order, on SQLite and on PostgreSQL alike: the
indexes state the list's NULLs placement (batches/indexes.py), so no page sorts every batch."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.http import QueryDict

from batches import selectors
from tests.support.factories import make_batch

pytestmark = pytest.mark.django_db

SORT_INDEX = {
    "created": "batch_newest_first",
    "-created": "batch_newest_first",
    "status": "batch_status_created",
    "progress": "batch_progress",
    "-progress": "batch_progress",
}


def plan(query: str) -> str:
    filters = selectors.BatchFilters.from_query(QueryDict(query))
    order = selectors._order_by(selectors.SORTS[filters.sort])
    page = filters.apply(selectors._row_queryset()).order_by(*order)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # A test's few rows would rightly be read whole and sorted: ask for the plan of a large
                # table, with statistics of the rows there are.
                cursor.execute("ANALYZE batches_batch")
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute("SET LOCAL enable_sort = off")
        return str(page[: selectors.PAGE_SIZE + 1].explain())


@pytest.mark.parametrize("sort", list(SORT_INDEX))
def test_each_sort_reads_its_index_in_order_without_sorting(sort):
    for _ in range(30):
        make_batch()
    text = plan(f"sort={sort}")
    assert SORT_INDEX[sort] in text
    assert "TEMP B-TREE FOR ORDER BY" not in text and "Sort Key" not in text, text


@pytest.mark.parametrize(
    ("query", "index"),
    [("endpoint=/v1/embeddings", "batch_endpoint_created"), ("model=gpt-4o", "batch_model_created")],
)
def test_an_endpoint_or_model_filter_reads_its_index_newest_first(query, index):
    for number in range(30):
        make_batch(endpoint="/v1/embeddings" if number % 2 else "/v1/responses", model=f"m{number % 7}")
    make_batch(model="gpt-4o")
    text = plan(query)
    # Its own index, or the newest-first one read until a page matches: either way, nothing is sorted.
    assert index in text or "batch_newest_first" in text
    assert "TEMP B-TREE FOR ORDER BY" not in text and "Sort Key" not in text, text
