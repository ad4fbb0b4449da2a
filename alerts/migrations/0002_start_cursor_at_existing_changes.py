from django.db import migrations
from django.db.models import Max


def start_after_existing_changes(apps, schema_editor):
    # Status changes recorded before alerts were installed are history, not news: start after them.
    BatchStatusChange = apps.get_model("batches", "BatchStatusChange")
    ScanCursor = apps.get_model("alerts", "ScanCursor")
    latest = BatchStatusChange.objects.aggregate(latest=Max("id"))["latest"] or 0
    ScanCursor.objects.update_or_create(name="status_changes", defaults={"position": latest})


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial"), ("batches", "0003_progress_and_cancel_requests")]

    operations = [migrations.RunPython(start_after_existing_changes, migrations.RunPython.noop)]
