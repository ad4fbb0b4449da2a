"""`python manage.py housekeeping [--dry-run]`: the hourly housekeeping, by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from housekeeping import services


class Command(BaseCommand):
    help = (
        "Remove what the dashboard no longer needs (expired sessions, finished batches' extra progress "
        "snapshots, old webhook receipts, alert deliveries, sign-in records and audit events) and print "
        "what was removed. Beat runs the same every hour."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="only count what would be removed; remove nothing"
        )

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        report = services.run(dry_run=dry_run)
        for line in report.lines():
            self.stdout.write(line)
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(self.style.SUCCESS(f"housekeeping {verb} {report.removed:,} rows in all"))
