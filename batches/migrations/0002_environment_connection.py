from django.db import migrations


def create_environment_connection(apps, schema_editor):
    Connection = apps.get_model("batches", "Connection")
    Connection.objects.get_or_create(
        name="default", defaults={"from_environment": True, "api_key_env": "OPENAI_API_KEY"}
    )


class Migration(migrations.Migration):
    dependencies = [("batches", "0001_initial")]

    operations = [migrations.RunPython(create_environment_connection, migrations.RunPython.noop)]
