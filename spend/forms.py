"""The admins' forms: a price (default or a connection's override) and a budget."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from batches.models import Connection
from spend.models import MAX_PRICE, Price


def _price_field(label: str) -> forms.DecimalField:
    return forms.DecimalField(
        label=label, min_value=Decimal(0), max_value=MAX_PRICE, max_digits=14, decimal_places=6
    )


class PriceForm(forms.Form):
    model = forms.CharField(
        max_length=200,
        help_text="The base model (gpt-4o-mini also prices gpt-4o-mini-2024-07-18) or an exact name.",
    )
    connection = forms.ModelChoiceField(
        Connection.objects.order_by("name"),
        required=False,
        empty_label="Every connection (the default price)",
        help_text="Set one to override the default on that connection only (negotiated or Azure prices).",
    )
    input = _price_field("Input, $ per million tokens (batch price)")
    cached_input = _price_field("Cached input, $ per million tokens")
    output = _price_field("Output, $ per million tokens")

    def __init__(self, *args: Any, instance: Price | None = None, **kwargs: Any) -> None:
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "model": instance.model,
                "connection": instance.connection,
                "input": instance.input,
                "cached_input": instance.cached_input,
                "output": instance.output,
            }
        super().__init__(*args, **kwargs)
        self.instance = instance

    def clean_model(self) -> str:
        return self.cleaned_data["model"].strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        model, connection = data.get("model"), data.get("connection")
        if model:
            clash = Price.objects.filter(model=model, connection=connection)
            if self.instance is not None:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                where = f"on {connection}" if connection else "as the default"
                raise forms.ValidationError(f"{model} already has a price {where}: edit that one.")
        return data


class BudgetForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    connection = forms.ModelChoiceField(
        Connection.objects.order_by("name"),
        required=False,
        empty_label="(a metadata value instead)",
    )
    metadata = forms.CharField(
        max_length=577,
        required=False,
        label="Metadata key=value",
        help_text="For example project=search; used when no connection is chosen.",
    )
    monthly_usd = forms.DecimalField(
        label="Monthly budget, $", min_value=Decimal("0.01"), max_digits=14, decimal_places=2
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        connection, metadata = data.get("connection"), (data.get("metadata") or "").strip()
        if connection is not None and metadata:
            raise forms.ValidationError("Choose a connection or a metadata value, not both.")
        if connection is None:
            key, sep, value = metadata.partition("=")
            if not sep or not key.strip() or len(key.strip()) > 64 or len(value.strip()) > 512:
                raise forms.ValidationError("Choose a connection, or give a metadata value as key=value.")
            data["metadata_key"], data["metadata_value"] = key.strip(), value.strip()
        else:
            data["metadata_key"], data["metadata_value"] = "", ""
        return data
