"""The cost the sync writes with each batch (spend.costs.Pricer in the writer's own statements): the
same as the recompute after a price change, per connection overrides included, and right even when a
price is edited while a sync run is under way."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from batches import sync
from batches.api.objects import ApiBatch
from batches.models import Batch
from spend import costs, services
from spend.models import BatchSpend, Price
from spend.prices import PriceBook, to_micros
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db


def _stored_costs() -> dict[str, int | None]:
    return dict(Batch.objects.values_list("batch_id", "cost_micros"))


def _spend_costs() -> dict[str, int | None]:
    return dict(BatchSpend.objects.values_list("batch__batch_id", "cost_micros"))


def _api_batch(status: str, usage: dict | None, *, model: str = "gpt-4o-mini") -> ApiBatch:
    raw = {
        "id": "batch_priced",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "model": model,
        "status": status,
        "created_at": 1_764_300_000,
        "request_counts": {"total": 10, "completed": 4 if usage else 0, "failed": 0},
    }
    if usage is not None:
        raw["usage"] = usage
    return ApiBatch.from_json(raw)


def test_a_full_sync_stores_the_costs_the_recompute_would(simulator_connection, simulator):
    sync.full_sync(simulator_connection)
    synced = _stored_costs()
    assert any(cost for cost in synced.values()), "the simulator's finished batches have usage and prices"
    assert any(cost is None for cost in synced.values()), "and its pending batches have no usage yet"
    costs.recompute()
    assert _stored_costs() == synced
    assert _spend_costs() == synced


def test_an_update_that_brings_usage_stores_the_new_cost_and_its_spend_copy(simulator_connection):
    sync.upsert_batches(simulator_connection, [_api_batch("in_progress", None)], observed_at=timezone.now())
    assert _stored_costs() == {"batch_priced": None}
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000, "total_tokens": 2_000_000}
    sync.upsert_batches(simulator_connection, [_api_batch("completed", usage)], observed_at=timezone.now())
    # gpt-4o-mini: $0.075 per million input, $0.30 per million output.
    assert _stored_costs() == {"batch_priced": to_micros("0.375")}
    assert _spend_costs() == {"batch_priced": to_micros("0.375")}


def test_an_unpriced_model_is_synced_with_no_cost_not_zero(simulator_connection):
    usage = {"input_tokens": 1_000, "output_tokens": 1_000, "total_tokens": 2_000}
    api = _api_batch("completed", usage, model="my-own-finetune")
    sync.upsert_batches(simulator_connection, [api], observed_at=timezone.now())
    assert _stored_costs() == {"batch_priced": None}
    assert _spend_costs() == {"batch_priced": None}


def test_the_sync_prices_a_connection_with_its_own_override(simulator_connection):
    Price.objects.create(
        model="gpt-4o-mini",
        connection=simulator_connection,
        input=Decimal("1"),
        cached_input=Decimal("0"),
        output=Decimal("0"),
        updated_at=timezone.now(),
    )
    usage = {"input_tokens": 2_000_000, "output_tokens": 0, "total_tokens": 2_000_000}
    sync.upsert_batches(simulator_connection, [_api_batch("completed", usage)], observed_at=timezone.now())
    assert _stored_costs() == {"batch_priced": 2_000_000}


def test_a_price_edited_during_a_sync_run_reprices_what_the_run_wrote(simulator_connection, simulator):
    admin = make_user("root", "admin")
    pages = 0

    def edit_every_price_after_the_first_page() -> None:
        # The edit's own recompute runs at once, between this run's pages: the pages after it are
        # written with the prices the run loaded at its start.
        nonlocal pages
        pages += 1
        if pages == 1:
            for price in Price.objects.filter(connection=None):
                change = services.PriceChange(
                    price.model, None, price.input * 3, price.cached_input, price.output
                )
                services.save_price(change, actor=admin, pk=price.pk)

    sync.full_sync(simulator_connection, on_page=edit_every_price_after_the_first_page)
    assert pages > 1
    synced = _stored_costs()
    costs.recompute()
    assert _stored_costs() == synced
    assert _spend_costs() == synced


def test_a_pricer_is_current_until_a_price_changes(simulator_connection):
    pricer = costs.Pricer.load(simulator_connection.pk)
    assert pricer.is_current()
    assert pricer.book == PriceBook.load()
    Price.objects.filter(model="gpt-4o-mini", connection=None).update(output=Decimal("9"))
    assert not pricer.is_current()
