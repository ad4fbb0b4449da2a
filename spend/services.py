"""Writes of the spend app: prices and budgets as admins edit them (each with its audit event), and the
recompute of the costs a price change moves."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit
from batches.models import Connection
from spend import costs
from spend.models import Budget, Price


@dataclass(frozen=True)
class PriceChange:
    model: str
    connection: Connection | None
    input: Decimal
    cached_input: Decimal
    output: Decimal


def _describe(price: Price | PriceChange) -> str:
    return f"input {price.input}, cached input {price.cached_input}, output {price.output} $/M tokens"


def save_price(
    change: PriceChange,
    *,
    actor: User | AnonymousUser,
    request: HttpRequest | None = None,
    pk: int | None = None,
) -> tuple[Price, int]:
    """Create or edit a price, then reprice the batches it prices. Returns the price and how many
    batches were repriced."""
    with transaction.atomic():
        price = Price.objects.select_for_update().get(pk=pk) if pk else None
        before = _describe(price) if price else "none"
        old_model = price.model if price else None
        if price is None:
            price = Price(model=change.model, connection=change.connection)
        price.model = change.model
        price.connection = change.connection
        price.input, price.cached_input, price.output = change.input, change.cached_input, change.output
        price.source = f"edited by {actor.get_username() if actor.is_authenticated else 'unknown'}"
        price.updated_at = timezone.now()
        price.updated_by = actor if isinstance(actor, User) else None
        price.save()
        audit.record(
            "price.save",
            actor=actor,
            target=str(price),
            detail=f"{before} -> {_describe(change)}",
            request=request,
        )
    repriced = costs.recompute({change.model, *([old_model] if old_model else [])})
    return price, repriced


def delete_price(price: Price, *, actor: User | AnonymousUser, request: HttpRequest | None = None) -> int:
    model = price.model
    with transaction.atomic():
        audit.record("price.delete", actor=actor, target=str(price), detail=_describe(price), request=request)
        price.delete()
    return costs.recompute({model})


def create_budget(
    *,
    name: str,
    connection: Connection | None,
    metadata_key: str,
    metadata_value: str,
    monthly_usd: Decimal,
    actor: User | AnonymousUser,
    request: HttpRequest | None = None,
) -> Budget:
    with transaction.atomic():
        budget = Budget.objects.create(
            name=name,
            connection=connection,
            metadata_key=metadata_key if connection is None else "",
            metadata_value=metadata_value if connection is None else "",
            monthly_usd=monthly_usd,
            created_at=timezone.now(),
            created_by=actor if isinstance(actor, User) else None,
        )
        audit.record(
            "budget.create",
            actor=actor,
            target=str(budget),
            detail=f"${monthly_usd} a month",
            request=request,
        )
    return budget


def delete_budget(budget: Budget, *, actor: User | AnonymousUser, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        audit.record(
            "budget.delete",
            actor=actor,
            target=str(budget),
            detail=f"${budget.monthly_usd} a month",
            request=request,
        )
        budget.delete()
