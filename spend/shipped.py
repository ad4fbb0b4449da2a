"""The price list shipped with the dashboard (data/prices.json) and its loading into the price table:
by the data migration on a new database, and by tests whose database was flushed."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.utils import timezone

SHIPPED = Path(__file__).resolve().parent / "data" / "prices.json"


def load(price_model: Any) -> int:
    """Add each shipped model's default price that the table lacks (edits are kept); returns how many.
    `price_model` is the Price model, or the migration's historical version of it."""
    data = json.loads(SHIPPED.read_text())
    published = f"as published on {data['as_of']} at {data['source']}, halved for the Batch API"
    unchecked = f"not checked against the price list of {data['as_of']}: please verify"
    now = timezone.now()
    added = 0
    for item in data["models"]:
        _, created = price_model.objects.get_or_create(
            model=item["model"],
            connection=None,
            defaults={
                "input": Decimal(item["input"]),
                "cached_input": Decimal(item["cached_input"]),
                "output": Decimal(item["output"]),
                "source": published if item.get("confident") else unchecked,
                "updated_at": now,
            },
        )
        added += created
    return added
