"""The price table: the shipped list (data/prices.json), the mapping of dated model names to their base
model, and the lookup of a model's rates on a connection. Reads only; edits are in spend.services."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from spend.models import Price

MICROS = Decimal(1_000_000)

# gpt-4o-mini-2024-07-18 -> gpt-4o-mini, o3-2025-04-16 -> o3, gpt-4-0613 -> gpt-4: a snapshot's name is
# its base model's followed by the date it was taken.
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def base_model(model: str) -> str:
    return _SNAPSHOT.sub("", model.strip())


@dataclass(frozen=True, slots=True)
class Rates:
    """Micro-dollars per million tokens: integers, so costs are exact integer arithmetic in Python and
    in SQL alike (spend.costs)."""

    input: int
    cached_input: int
    output: int
    model: str  # the price row's model (the base model unless the exact name has a row of its own)
    override: bool  # a connection's own price rather than the default

    @classmethod
    def of(cls, price: Price) -> Rates:
        return cls(
            input=to_micros(price.input),
            cached_input=to_micros(price.cached_input),
            output=to_micros(price.output),
            model=price.model,
            override=price.connection_id is not None,
        )


def to_micros(dollars: Decimal | str) -> int:
    return int((Decimal(dollars) * MICROS).to_integral_value())


class PriceBook:
    """Every price row, looked up by (connection, model): the connection's own price of the exact name,
    then of its base model, then the default of the exact name, then of the base model."""

    def __init__(self, prices: list[Price]) -> None:
        self._rates = {(price.connection_id, price.model): Rates.of(price) for price in prices}

    @classmethod
    def load(cls) -> PriceBook:
        return cls(list(Price.objects.all()))

    def __eq__(self, other: object) -> bool:
        # Equal books price every batch alike (the rates, not the rows' sources or edit times).
        return isinstance(other, PriceBook) and other._rates == self._rates

    def rates(self, connection_id: int | None, model: str) -> Rates | None:
        if not model:
            return None
        names = (model, base_model(model))
        for owner in (connection_id, None):
            for name in names:
                found = self._rates.get((owner, name))
                if found is not None:
                    return found
        return None
