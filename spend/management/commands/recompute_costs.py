"""Work out every batch's cost again from the price table (after editing prices outside the pages)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from spend import costs


class Command(BaseCommand):
    help = "Recompute every batch's cost from the price table, in SQL."

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        written = costs.recompute()
        self.stdout.write(f"{written:,} batches repriced in {time.monotonic() - started:.1f} s")
