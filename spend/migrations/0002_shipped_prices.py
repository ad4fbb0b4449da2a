"""The shipped price list (spend/data/prices.json) as the default prices. Read from the file as it is at
migration time; later edits of the file do not change a database, the Prices page does."""

from django.db import migrations


def load(apps, schema_editor):
    from spend import shipped

    shipped.load(apps.get_model("spend", "Price"))


class Migration(migrations.Migration):
    dependencies = [("spend", "0001_prices_and_budgets"), ("batches", "0008_batch_cost")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
