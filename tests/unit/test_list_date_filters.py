"""The list's creation-date filters are ranges on created_at (so that an index serves them), and still
take whole days, both ends included, to the edges of the calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.http import QueryDict

from batches import selectors
from batches.models import Batch
from tests.support.factories import make_batch

pytestmark = pytest.mark.django_db

MIDNIGHT = datetime(2026, 5, 2, tzinfo=UTC)


def shown(query: str) -> set[str]:
    filters = selectors.BatchFilters.from_query(QueryDict(query))
    return set(filters.apply(Batch.objects.all()).values_list("batch_id", flat=True))


def test_a_day_runs_from_its_first_to_its_last_moment_both_ends_included():
    make_batch(batch_id="late_may_1", created_at=MIDNIGHT - timedelta(microseconds=1))
    make_batch(batch_id="early_may_2", created_at=MIDNIGHT)
    make_batch(batch_id="late_may_2", created_at=MIDNIGHT + timedelta(days=1, microseconds=-1))
    make_batch(batch_id="may_3", created_at=MIDNIGHT + timedelta(days=1))
    assert shown("created_from=2026-05-02&created_to=2026-05-02") == {"early_may_2", "late_may_2"}
    assert shown("created_from=2026-05-02") == {"early_may_2", "late_may_2", "may_3"}
    assert shown("created_to=2026-05-01") == {"late_may_1"}


def test_the_calendars_edges_filter_without_overflowing(client, django_user_model):
    make_batch(batch_id="now")
    assert shown("created_to=9999-12-31") == {"now"}
    assert shown("created_from=0001-01-01") == {"now"}
    assert shown("created_from=9999-12-31") == set()
    client.force_login(django_user_model.objects.create_user("ana"))
    assert client.get("/", {"created_from": "0001-01-01", "created_to": "9999-12-31"}).status_code == 200


def test_the_filter_is_a_range_on_the_column_itself():
    filters = selectors.BatchFilters.from_query(QueryDict("created_from=2026-05-02&created_to=2026-05-03"))
    sql = str(filters.apply(Batch.objects.all()).query)
    assert "django_datetime_cast_date" not in sql and "::date" not in sql
