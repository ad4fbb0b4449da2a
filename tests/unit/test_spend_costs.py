"""What a batch costs: usage x price, stored on the batch at sync time and again after a price change."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from batches import sync
from batches.api.objects import ApiBatch
from batches.connections import environment_connection
from batches.models import Batch
from spend import costs, services
from spend.models import Price
from spend.prices import PriceBook, base_model, to_micros
from tests.support.factories import make_batch, make_connection, make_user

pytestmark = pytest.mark.django_db


def _usage(input_tokens: int, cached: int, output: int) -> dict:
    return {"input_tokens": input_tokens, "cached_tokens": cached, "output_tokens": output}


def test_dated_model_names_are_priced_as_their_base_model():
    assert base_model("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert base_model("o3-2025-04-16") == "o3"
    assert base_model("gpt-4.1-nano") == "gpt-4.1-nano"
    rates = PriceBook.load().rates(None, "gpt-4o-mini-2024-07-18")
    assert rates is not None and rates.model == "gpt-4o-mini"


def test_the_shipped_prices_are_loaded_with_their_date_and_source():
    price = Price.objects.get(model="gpt-4o-mini", connection=None)
    assert (price.input, price.cached_input, price.output) == (
        Decimal("0.075"),
        Decimal("0.0375"),
        Decimal("0.3"),
    )
    assert "https://openai.com/api/pricing" in price.source and "2025-08-07" in price.source


def test_the_cost_equals_the_sum_of_usage_times_price_to_the_cent_for_a_known_set():
    # Expected by hand, in dollars: (uncached x input + cached x cached input + output x output) / 1e6.
    known = [
        (
            "gpt-4o-mini",
            _usage(1_000_000, 200_000, 500_000),
            Decimal("0.075") * Decimal("0.8")
            + Decimal("0.0375") * Decimal("0.2")
            + Decimal("0.30") * Decimal("0.5"),
        ),
        (
            "gpt-4o-2024-08-06",
            _usage(2_500_000, 0, 1_000_000),
            Decimal("1.25") * Decimal("2.5") + Decimal("5") * 1,
        ),
        (
            "o4-mini",
            _usage(123_457, 23_457, 987_654),
            (
                Decimal(100_000) * Decimal("0.55")
                + Decimal(23_457) * Decimal("0.1375")
                + Decimal(987_654) * Decimal("2.20")
            )
            / 1_000_000,
        ),
        ("text-embedding-3-small", _usage(40_000_000, 0, 0), Decimal("0.40")),
    ]
    for model, usage, _ in known:
        make_batch(
            model=model,
            status="completed",
            input_tokens=usage["input_tokens"],
            cached_tokens=usage["cached_tokens"],
            output_tokens=usage["output_tokens"],
        )
    costs.recompute()
    total = sum(Batch.objects.values_list("cost_micros", flat=True))
    expected = sum(dollars for _, _, dollars in known)
    assert abs(Decimal(total) / 1_000_000 - expected) < Decimal("0.005")
    # And each batch agrees with the same arithmetic done in Python.
    book = PriceBook.load()
    for batch in Batch.objects.all():
        rates = book.rates(batch.connection_id, batch.model)
        assert rates is not None
        assert batch.cost_micros == costs.cost_micros(
            batch.input_tokens, batch.cached_tokens, batch.output_tokens, rates
        )


def test_unpriced_models_and_batches_without_usage_have_no_cost_not_zero():
    unpriced = make_batch(model="my-finetune", status="completed", input_tokens=10, output_tokens=5)
    no_usage = make_batch(model="gpt-4o-mini")
    costs.recompute()
    unpriced.refresh_from_db()
    no_usage.refresh_from_db()
    assert unpriced.cost_micros is None
    assert no_usage.cost_micros is None


def test_absurd_token_counts_get_no_cost_instead_of_an_overflow():
    batch = make_batch(model="o1", status="completed", input_tokens=9 * 10**18, output_tokens=9 * 10**18)
    costs.recompute()
    batch.refresh_from_db()
    assert batch.cost_micros is None


def test_a_big_batch_costs_exactly_what_python_says():
    batch = make_batch(
        model="o1",
        status="completed",
        input_tokens=9_999_999_999_999,
        cached_tokens=12_345,
        output_tokens=7_654_321_987,
    )
    costs.recompute()
    batch.refresh_from_db()
    rates = PriceBook.load().rates(None, "o1")
    assert rates is not None
    assert batch.cost_micros == costs.cost_micros(9_999_999_999_999, 12_345, 7_654_321_987, rates)


def test_a_price_change_recomputes_the_costs_it_moves():
    batch = make_batch(
        model="gpt-4o-mini-2024-07-18",
        status="completed",
        input_tokens=1_000_000,
        cached_tokens=0,
        output_tokens=0,
    )
    other = make_batch(
        model="gpt-4o", status="completed", input_tokens=1_000_000, cached_tokens=0, output_tokens=0
    )
    costs.recompute()
    other_before = Batch.objects.get(pk=other.pk).cost_micros
    admin = make_user("root", "admin")
    price = Price.objects.get(model="gpt-4o-mini", connection=None)
    services.save_price(
        services.PriceChange("gpt-4o-mini", None, Decimal("1"), Decimal("0.5"), Decimal("2")),
        actor=admin,
        pk=price.pk,
    )
    assert Batch.objects.get(pk=batch.pk).cost_micros == 1_000_000
    assert Batch.objects.get(pk=other.pk).cost_micros == other_before
    from accounts.models import AuditEvent

    assert AuditEvent.objects.filter(action="price.save", actor=admin).exists()


def test_a_connection_override_prices_only_that_connection():
    team = make_connection("azure-team")
    here = make_batch(team, model="gpt-4o-mini", status="completed", input_tokens=1_000_000, output_tokens=0)
    elsewhere = make_batch(model="gpt-4o-mini", status="completed", input_tokens=1_000_000, output_tokens=0)
    admin = make_user("root", "admin")
    services.save_price(
        services.PriceChange("gpt-4o-mini", team, Decimal("0.01"), Decimal("0"), Decimal("0")), actor=admin
    )
    assert Batch.objects.get(pk=here.pk).cost_micros == 10_000
    assert Batch.objects.get(pk=elsewhere.pk).cost_micros == to_micros("0.075")


def test_the_sync_stores_the_cost_of_the_batches_it_writes():
    connection = environment_connection()
    api = ApiBatch.from_json(
        {
            "id": "batch_cost1",
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "model": "gpt-4.1-mini-2025-04-14",
            "status": "completed",
            "created_at": 1_764_300_000,
            "request_counts": {"total": 2, "completed": 2, "failed": 0},
            "usage": {
                "input_tokens": 2_000_000,
                "input_tokens_details": {"cached_tokens": 1_000_000},
                "output_tokens": 1_000_000,
                "total_tokens": 3_000_000,
            },
        }
    )
    sync.upsert_batches(connection, [api], observed_at=timezone.now())
    stored = Batch.objects.get(batch_id="batch_cost1")
    # 1M uncached x $0.20 + 1M cached x $0.05 + 1M output x $0.80
    assert stored.cost_micros == 1_050_000
    # And the spend page's copy of it, in the same transaction.
    from spend.models import BatchSpend

    copy = BatchSpend.objects.get(batch=stored)
    assert (copy.cost_micros, copy.model, copy.has_usage, copy.created_hour) == (
        1_050_000,
        "gpt-4.1-mini-2025-04-14",
        True,
        1_764_300_000 // 3600,
    )
