"""`python manage.py simulate_api`: the built-in fake of the OpenAI Batch and Files API.

A thin door into the `simulator` package, which knows nothing of Django: the same options and
behaviour as `python -m simulator` (see `simulator.cli`), with Django's `--verbosity 2` logging
every request.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from simulator import cli


class Command(BaseCommand):
    help = cli.DESCRIPTION

    def add_arguments(self, parser: ArgumentParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            parsed = cli.Options.from_parsed(options, verbose=options["verbosity"] >= 2)
            cli.serve(parsed, name="simulate_api")
        except cli.UsageError as exc:
            raise CommandError(str(exc)) from None
