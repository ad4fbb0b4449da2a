"""Keyset pagination visits every row exactly once, in order, under every sort."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from batches import selectors
from batches.models import Batch
from tests.support.factories import make_batch

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("sort", list(selectors.SORTS))
def test_paging_visits_every_batch_once_in_sort_order(sort):
    rng = random.Random(5)
    now = timezone.now()
    statuses = ["in_progress", "completed", "failed", "validating"]
    for i in range(37):
        total = rng.choice([0, 10, 100])
        done = rng.randint(0, total)
        make_batch(
            status=rng.choice(statuses),
            # Ties and missing creation times are where keyset pagination goes wrong.
            created_at=None if i % 9 == 0 else now - timedelta(minutes=rng.randint(0, 5)),
            total_requests=total,
            completed_requests=done,
            failed_requests=0,
            done_ratio=done / total if total else 0.0,
        )
    filters = selectors.BatchFilters(sort=sort)
    seen: list[int] = []
    cursor = None
    for _ in range(20):
        page = selectors.batch_page(filters, cursor, page_size=5)
        seen += [row.pk for row in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = list(
        Batch.objects.order_by(*selectors._order_by(selectors.SORTS[sort])).values_list("pk", flat=True)
    )
    assert seen == expected


def test_a_cursor_from_another_sort_is_ignored():
    for _ in range(3):
        make_batch()
    page = selectors.batch_page(selectors.BatchFilters(sort="created"), None, page_size=1)
    other = selectors.batch_page(selectors.BatchFilters(sort="status"), page.next_cursor, page_size=1)
    assert other.is_first_page
