import pytest
from django.contrib.auth.models import User
from django.db.models import F

from batches.models import Batch
from dashboard.prepared import PreparedQuery
from tests.support.factories import make_batch

pytestmark = pytest.mark.django_db


def test_it_returns_what_the_orm_returns_with_converted_values_and_annotations():
    batch = make_batch(status="in_progress", metadata={"team": "a"}, completed_requests=7)
    query = PreparedQuery(
        lambda pk: Batch.objects.annotate(connection_name=F("connection__name")).filter(pk=pk)
    )
    loaded = query.first(batch.pk)
    expected = Batch.objects.get(pk=batch.pk)
    for field in Batch._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(expected, field.attname), field.name
    assert loaded.connection_name == batch.connection.name
    assert loaded.created_at.tzinfo is not None
    assert query.first(batch.pk + 1000) is None


def test_each_call_runs_with_its_own_parameter():
    first, second = make_batch(), make_batch()
    query = PreparedQuery(lambda pk: Batch.objects.only("batch_id").filter(pk=pk))
    assert query.first(first.pk).batch_id == first.batch_id
    assert query.first(second.pk).batch_id == second.batch_id


def test_it_prepares_a_lookup_on_a_32_bit_key():
    user = User.objects.create_user("someone")
    assert PreparedQuery(lambda pk: User.objects.filter(pk=pk)).first(user.pk) == user


def test_it_refuses_what_it_cannot_rebuild():
    with pytest.raises(ValueError, match="plain model"):
        PreparedQuery(lambda pk: Batch.objects.select_related("connection").filter(pk=pk)).first(1)
    with pytest.raises(ValueError, match="marker"):
        PreparedQuery(lambda pk: Batch.objects.filter(pk=1)).first(1)
