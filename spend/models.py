"""What money means here: the price of each model (Price), monthly budgets (Budget) and the budget
alerts already raised (BudgetAlert, one row per budget, month and threshold).

A batch's cost itself is stored on the batch (batches.models.Batch.cost_micros) so that the list can
sort and sum it in SQL; spend.costs writes it.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from batches.models import Batch, Connection

MAX_PRICE = Decimal(100_000)


def _price_field(help_text: str) -> models.DecimalField:
    # Dollars per million tokens with six decimals: exactly a whole number of micro-dollars per million
    # tokens, which is what the cost arithmetic works in (spend.costs).
    return models.DecimalField(max_digits=14, decimal_places=6, help_text=help_text)


class Price(models.Model):
    """The Batch API's price of one model (its base name, e.g. gpt-4o-mini, which also prices the dated
    names gpt-4o-mini-2024-07-18, ...), in US dollars per million tokens with the batch discount applied.
    Without a connection it is the default; with one it overrides the default there (a negotiated
    price, an Azure deployment's name)."""

    model = models.CharField(max_length=200)
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.CASCADE, related_name="prices"
    )
    input = _price_field("Per million uncached input tokens.")
    cached_input = _price_field("Per million cached input tokens.")
    output = _price_field("Per million output (and reasoning) tokens.")
    # Where the figures come from: the public price list and its date, or the admin who edited them.
    source = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField()
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("model", "connection__name")
        constraints = [
            models.UniqueConstraint(
                fields=("model",), condition=Q(connection__isnull=True), name="one_default_price_per_model"
            ),
            models.UniqueConstraint(fields=("connection", "model"), name="one_price_per_connection_model"),
            models.CheckConstraint(
                # Above $100,000 per million tokens the cost arithmetic could overflow (spend.costs).
                condition=Q(input__gte=0, input__lte=MAX_PRICE)
                & Q(cached_input__gte=0, cached_input__lte=MAX_PRICE)
                & Q(output__gte=0, output__lte=MAX_PRICE),
                name="price_in_range",
            ),
        ]

    def __str__(self) -> str:
        where = f" on {self.connection}" if self.connection_id else ""
        return f"{self.model}{where}"


class Budget(models.Model):
    """A monthly budget in US dollars for one connection or for one metadata value (project=search)."""

    name = models.CharField(max_length=100, blank=True)
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    metadata_key = models.CharField(max_length=64, blank=True)
    metadata_value = models.CharField(max_length=512, blank=True)
    monthly_usd = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("name", "id")
        constraints = [
            # Exactly one scope: a connection, or a metadata key (with its value).
            models.CheckConstraint(
                condition=(Q(connection__isnull=False) & Q(metadata_key=""))
                | (Q(connection__isnull=True) & ~Q(metadata_key="")),
                name="budget_has_one_scope",
            ),
            models.CheckConstraint(condition=Q(monthly_usd__gt=Decimal(0)), name="budget_positive"),
        ]

    def __str__(self) -> str:
        return self.name or self.scope

    @property
    def scope(self) -> str:
        if self.connection_id:
            return f"connection {self.connection}"
        return f"{self.metadata_key}={self.metadata_value}"


class BudgetAlert(models.Model):
    """One alert of one budget in one month. The unique (budget, month, kind) makes it at most one row
    whichever worker notices first; sending moves it pending -> sending -> sent or failed by
    compare-and-set. A failed send goes back to pending for a later attempt (the alert channels'
    backoff and attempt limit), and only to the channels not yet told (`told`)."""

    class Kind(models.TextChoices):
        PACE = "pace", "on pace to overrun"
        REACHED_80 = "80", "80 % used"
        REACHED_100 = "100", "100 % used"

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    month = models.DateField(help_text="The first day of the month.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    spent_micros = models.BigIntegerField()
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a worker took it for sending: one that died mid-send leaves it "sending", taken back later.
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The channels (pks) that already have it, so that a retry tells only the others.
    told = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("budget", "month", "kind"), name="one_budget_alert_per_month")
        ]

    def __str__(self) -> str:
        return f"{self.budget} {self.kind} {self.month:%Y-%m}"


class BatchSpend(models.Model):
    """A narrow copy of what the spend page reads of each batch (its cost, when, where, what, its
    metadata), kept by spend.costs in the same statements that price the batch. The batch's own row
    also carries the raw JSON (about a kilobyte): scanning 100,000 of those for a period's totals took
    several times the page's budget, these rows a fraction of it."""

    batch = models.OneToOneField(Batch, primary_key=True, on_delete=models.CASCADE, related_name="spend")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    # The batch's created_at in whole hours since 1970 (UTC): the spend page's periods and buckets are
    # integer arithmetic on it instead of a date function per row.
    created_hour = models.BigIntegerField(null=True)
    model = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=200)
    metadata = models.JSONField(null=True)
    cost_micros = models.BigIntegerField(null=True)
    has_usage = models.BooleanField()

    # No index on created_hour: a period's rows are most of the table more often than not, and
    # SQLite read them through such an index at twice the time of a scan of these narrow rows.

    def __str__(self) -> str:
        return f"spend of {self.batch_id}"
