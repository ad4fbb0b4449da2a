"""The shipped price list (spend/data/prices.json) as the default prices. Read from the file as it is at
migration time; later edits of the file do not change a database, the Prices page does."""

import json
from decimal import Decimal
from pathlib import Path

from django.db import migrations
from django.utils import timezone


def load(apps, schema_editor):
    Price = apps.get_model("spend", "Price")
    data = json.loads((Path(__file__).resolve().parents[1] / "data" / "prices.json").read_text())
    published = f"as published on {data['as_of']} at {data['source']}, halved for the Batch API"
    unchecked = f"not checked against the price list of {data['as_of']}: please verify"
    now = timezone.now()
    for item in data["models"]:
        Price.objects.get_or_create(
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


class Migration(migrations.Migration):
    dependencies = [("spend", "0001_prices_and_budgets"), ("batches", "0006_batch_cost")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
