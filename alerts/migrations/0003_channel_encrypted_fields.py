from django.db import migrations, models


class Migration(migrations.Migration):
    """The columns that hold a channel's URL and secret encrypted (or name the variable holding
    them); 0004 fills them from the plaintext columns, which 0005 then drops. Three migrations, so
    that on PostgreSQL the rows are rewritten in a transaction of their own, between the two
    schema changes."""

    dependencies = [("alerts", "0002_start_cursor_at_existing_changes")]

    operations = [
        migrations.AddField(model_name="channel", name="url_encrypted", field=models.TextField(blank=True)),
        migrations.AddField(
            model_name="channel",
            name="url_env",
            field=models.CharField(
                blank=True, help_text="Name of the environment variable holding the URL.", max_length=100
            ),
        ),
        migrations.AddField(
            model_name="channel", name="url_hint", field=models.CharField(blank=True, max_length=300)
        ),
        migrations.AddField(
            model_name="channel", name="secret_encrypted", field=models.TextField(blank=True)
        ),
        migrations.AddField(
            model_name="channel",
            name="secret_env",
            field=models.CharField(
                blank=True, help_text="Name of the environment variable holding the secret.", max_length=100
            ),
        ),
    ]
