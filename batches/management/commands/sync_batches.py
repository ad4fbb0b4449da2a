from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from batches import schedule, sync
from batches.api.errors import APIError
from batches.connections import ConnectionNotConfigured
from batches.models import Connection


class Command(BaseCommand):
    help = "Run a full sync of batches now, without Celery, and print what it did."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--connection", help="Name of the connection (default: every enabled one).")
        parser.add_argument(
            "--complete",
            action="store_true",
            help="Walk every page instead of stopping at unchanged terminal batches.",
        )

    def handle(self, *args: Any, connection: str | None, complete: bool, **options: Any) -> None:
        connections = Connection.objects.filter(enabled=True)
        if connection:
            connections = Connection.objects.filter(name=connection)
            if not connections.exists():
                names = ", ".join(Connection.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"No connection named {connection!r} (known: {names}).")
        failed = False
        for conn in connections:
            try:
                result = sync.full_sync(conn, complete=complete or None)
            except (APIError, ConnectionNotConfigured, DatabaseError) as error:
                # A database error (not an API one) is a failed run too, recorded and backed off from.
                schedule.record_failure(conn, error)
                self.stderr.write(f"{conn.name}: failed: {error}")
                failed = True
                continue
            schedule.record_success(conn)
            self.stdout.write(
                f"{conn.name}: {result.created} created, {result.updated} updated, "
                f"{result.unchanged} unchanged, {result.api_calls} API calls"
                + (f", {result.skipped} malformed list items skipped" if result.skipped else "")
                + (f", {result.unsaved} batches the database refused (see the log)" if result.unsaved else "")
            )
        if failed:
            raise CommandError("At least one connection failed to sync.")
