from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def watched_interval(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # The old default (15 s, whoever watched) becomes the new one (5 s while watched, 60 s otherwise);
    # an interval an admin chose is kept.
    apps.get_model("batches", "Connection").objects.filter(refresh_interval=15).update(refresh_interval=5)


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0008_batch_cost"),
    ]

    operations = [
        migrations.AlterField(
            model_name="connection",
            name="refresh_interval",
            field=models.PositiveIntegerField(default=5, help_text="Seconds, while someone watches."),
        ),
        migrations.RunPython(watched_interval, migrations.RunPython.noop),
    ]
