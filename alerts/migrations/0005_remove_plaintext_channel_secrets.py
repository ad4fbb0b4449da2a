from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("alerts", "0004_encrypt_channel_secrets")]

    operations = [
        migrations.RemoveField(model_name="channel", name="url"),
        migrations.RemoveField(model_name="channel", name="secret"),
    ]
