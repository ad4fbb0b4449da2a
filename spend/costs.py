"""A batch's cost: usage times price, in integer micro-dollars, stored on the batch (Batch.cost_micros).

Written by the sync with every batch it inserts or updates (Pricer, called by batches.writer for its
cost column, one price table per sync run), and by a price edit for every batch of the models it prices
(recompute): a set-based UPDATE, one statement per model and connection, so 100,000 batches are
repriced by the database and not row by row in Python. Both keep the spend page's narrow copy
(BatchSpend) with the same statement (_refresh_sql).

cost = (uncached input x input rate + cached input x cached rate + output x output rate) / 1e6, rounded
half up to a micro-dollar, where the rates are micro-dollars per million tokens. Output tokens include
reasoning tokens (as the API counts them). A batch with no usage yet, or whose model has no price, has
no cost (NULL): shown as "no price", never $0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Case, F, Q, Value, When
from django.db.models.expressions import CombinedExpression
from django.db.models.fields import BigIntegerField
from django.db.models.functions import Coalesce

from batches.api.objects import ApiBatch
from batches.models import Batch
from spend.models import BatchSpend
from spend.prices import PriceBook, Rates, base_model

_ONE_MILLION = 1_000_000
_HALF = _ONE_MILLION // 2


@dataclass(frozen=True, slots=True)
class Breakdown:
    """What each kind of token cost, in micro-dollars (before the rounding of the total)."""

    uncached_input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    rates: Rates
    total_micros: int

    @property
    def input_micros(self) -> float:
        return self.uncached_input_tokens * self.rates.input / _ONE_MILLION

    @property
    def cached_micros(self) -> float:
        return self.cached_input_tokens * self.rates.cached_input / _ONE_MILLION

    @property
    def output_micros(self) -> float:
        return self.output_tokens * self.rates.output / _ONE_MILLION


def cost_micros(
    input_tokens: int | None, cached_tokens: int | None, output_tokens: int | None, rates: Rates
) -> int | None:
    """The same arithmetic as _cost_expression, for one batch in Python."""
    if input_tokens is None and output_tokens is None:
        return None
    if max(input_tokens or 0, cached_tokens or 0, output_tokens or 0) > MAX_TOKENS:
        return None
    cached = cached_tokens or 0
    if cached > (input_tokens or 0) and cached:
        return None
    uncached = (input_tokens or 0) - cached
    return (
        uncached * rates.input + cached * rates.cached_input + (output_tokens or 0) * rates.output + _HALF
    ) // _ONE_MILLION


def breakdown(batch: Batch, book: PriceBook) -> Breakdown | None:
    rates = book.rates(batch.connection_id, batch.model)
    total = (
        None
        if rates is None
        else cost_micros(batch.input_tokens, batch.cached_tokens, batch.output_tokens, rates)
    )
    if rates is None or total is None:
        return None
    cached = batch.cached_tokens or 0
    return Breakdown(
        uncached_input_tokens=(batch.input_tokens or 0) - cached,
        cached_input_tokens=cached,
        output_tokens=batch.output_tokens or 0,
        rates=rates,
        total_micros=total,
    )


def _int(value: int) -> Value:
    return Value(value, output_field=BigIntegerField())


def _div(left: Any, right: Any) -> CombinedExpression:
    # Integer division of integers, in SQLite and PostgreSQL alike.
    return CombinedExpression(left, "/", right, output_field=BigIntegerField())


# Beyond these the arithmetic below could overflow a 64-bit integer: a batch with more tokens of one
# kind (only a broken API sends that) gets no cost, and the price form refuses a higher price.
MAX_TOKENS = 10**13
MAX_RATE = 10**11  # micro-dollars per million tokens: $100,000 per million tokens


def _cost_expression(rates: Rates | None) -> Case | Value:
    """cost_micros's arithmetic in SQL. Each count t is split into t // 1e6 and t % 1e6, so that no
    product exceeds 64 bits: sum(q x rate) + (sum(m x rate) + 5e5) // 1e6 equals cost_micros exactly,
    since the first sum is a whole number."""
    if rates is None:
        return Value(None, output_field=BigIntegerField())
    cached = Coalesce(F("cached_tokens"), _int(0))
    counts = (
        (Coalesce(F("input_tokens"), _int(0)) - cached, rates.input),
        (cached, rates.cached_input),
        (Coalesce(F("output_tokens"), _int(0)), rates.output),
    )
    whole: Any = _int(0)
    rest: Any = _int(_HALF)
    for count, rate in counts:
        millions = _div(count, _int(_ONE_MILLION))
        whole = whole + millions * _int(rate)
        rest = rest + (count - millions * _int(_ONE_MILLION)) * _int(rate)
    return Case(
        When(Q(input_tokens__isnull=True) & Q(output_tokens__isnull=True), then=Value(None)),
        When(
            Q(input_tokens__gt=MAX_TOKENS)
            | Q(cached_tokens__gt=MAX_TOKENS)
            | Q(output_tokens__gt=MAX_TOKENS),
            then=Value(None),
        ),
        When(Q(cached_tokens__gt=Coalesce(F("input_tokens"), _int(0))), then=Value(None)),
        default=whole + _div(rest, _int(_ONE_MILLION)),
        output_field=BigIntegerField(),
    )


def _refresh_sql(db: BaseDatabaseWrapper, where: str) -> str:
    """Upsert the BatchSpend rows of the batches matching `where` (SQL over the batch table) from the
    batches themselves: one statement, in SQLite (3.24+) and PostgreSQL alike."""
    quote = db.ops.quote_name
    batch = Batch._meta
    columns = ("connection_id", "model", "endpoint", "metadata", "cost_micros")
    derived = ("created_hour", "has_usage")
    targets = ", ".join(quote(name) for name in ("batch_id", *columns, *derived))
    sources = ", ".join(quote(name) for name in ("id", *columns))
    updates = ", ".join(f"{quote(name)} = excluded.{quote(name)}" for name in (*columns, *derived))
    created = quote("created_at")
    if db.vendor == "sqlite":
        seconds = f"CAST(strftime('%%s', {created}) AS INTEGER)"
    else:
        seconds = f"CAST(EXTRACT(EPOCH FROM {created}) AS BIGINT)"
    return (
        f"INSERT INTO {quote(BatchSpend._meta.db_table)} ({targets}) "
        f"SELECT {sources}, {seconds} / 3600, "
        f"({quote('input_tokens')} IS NOT NULL OR {quote('output_tokens')} IS NOT NULL) "
        f"FROM {quote(batch.db_table)} WHERE {where} "
        f"ON CONFLICT ({quote('batch_id')}) DO UPDATE SET {updates}"
    )


def _refresh(where: str, params: list[Any]) -> None:
    db = connections[router.db_for_write(BatchSpend)]
    with db.cursor() as cursor:
        cursor.execute(_refresh_sql(db, where), params)


def _reprice(pairs: Iterable[tuple[int, str]], book: PriceBook, only: Q) -> int:
    """One UPDATE per (connection, model) pair, limited by `only`; returns the rows written."""
    written = 0
    for connection_id, model in pairs:
        written += Batch.objects.filter(only, connection_id=connection_id, model=model).update(
            cost_micros=_cost_expression(book.rates(connection_id, model))
        )
    return written


class Pricer:
    """Prices API batches of one connection as the sync writes them (batches.writer's cost column):
    one PriceBook for a whole sync run, each model's rates looked up once."""

    def __init__(self, book: PriceBook, connection_id: int) -> None:
        self.book = book
        self.connection_id = connection_id
        self._rates: dict[str, Rates | None] = {}

    @classmethod
    def load(cls, connection_id: int) -> Pricer:
        return cls(PriceBook.load(), connection_id)

    def __call__(self, api_batch: ApiBatch) -> int | None:
        usage = api_batch.usage
        if usage is None:
            return None
        model = api_batch.model or ""
        try:
            rates = self._rates[model]
        except KeyError:
            rates = self._rates[model] = self.book.rates(self.connection_id, model)
        if rates is None:
            return None
        return cost_micros(usage.input_tokens, usage.cached_tokens, usage.output_tokens, rates)

    def is_current(self) -> bool:
        """Whether the price table still says what it said when this was loaded: a price edited during
        a sync run may have been recomputed before the run wrote its batches with the old one."""
        return PriceBook.load() == self.book


def refresh_spend(pks: list[int]) -> None:
    """The spend page's copy (BatchSpend) of these batches, as they are stored now: one statement, in
    the caller's transaction (the sync runs it for every page it writes)."""
    if pks:
        _refresh(f"id IN ({', '.join(['%s'] * len(pks))})", list(pks))


# Batches per statement of reprice: well under every database's limit on parameters.
_REPRICE_CHUNK = 500


def reprice(pks: Sequence[int]) -> int:
    """Cost of these batches again, with today's prices, and their spend-page copies: what a sync run
    whose prices changed while it ran does for the batches it wrote. Returns the rows written."""
    book = PriceBook.load()
    written = 0
    for start in range(0, len(pks), _REPRICE_CHUNK):
        chunk = Q(pk__in=list(pks[start : start + _REPRICE_CHUNK]))
        pairs = Batch.objects.filter(chunk).values_list("connection_id", "model").distinct()
        written += _reprice(list(pairs), book, chunk)
        refresh_spend(list(pks[start : start + _REPRICE_CHUNK]))
    return written


def recompute(models: Iterable[str] | None = None) -> int:
    """Cost of every batch again (after a price change), or of the batches whose price row is one of
    `models` before or after the change (their base model or exact name). Returns the rows written."""
    book = PriceBook.load()
    pairs = list(Batch.objects.values_list("connection_id", "model").distinct())
    if models is not None:
        wanted = set(models)
        pairs = [pair for pair in pairs if pair[1] in wanted or base_model(pair[1]) in wanted]
    written = _reprice(pairs, book, Q())
    names = sorted({model for _, model in pairs})
    if models is None:
        _refresh("id >= %s", [0])  # a parameter, so that every driver reads %% as %
    elif names:
        _refresh(f"model IN ({', '.join(['%s'] * len(names))})", names)
    return written
