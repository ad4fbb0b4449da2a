from typing import Any

from django.core.management.base import BaseCommand

from batches.secrets import generate_key


class Command(BaseCommand):
    help = "Print a new Fernet key for DASHBOARD_ENCRYPTION_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(generate_key())
