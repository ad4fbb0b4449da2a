"""SQLite only: turn auto_vacuum=INCREMENTAL on for a database created before housekeeping existed, so
that its incremental vacuum can give freed pages back (housekeeping/sqlite.py). It takes one full
VACUUM, which rewrites the file under an exclusive lock: a release's migrate is the moment for it. New
databases get the setting from their first connection (dashboard/settings.py) and skip this."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def convert(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("PRAGMA auto_vacuum")
        if cursor.fetchone()[0] == 2:
            return
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("VACUUM")


class Migration(migrations.Migration):
    # VACUUM cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("batches", "0007_housekeeping_indexes"),
        ("alerts", "0006_housekeeping_indexes"),
    ]

    operations = [migrations.RunPython(convert, migrations.RunPython.noop, elidable=True)]
