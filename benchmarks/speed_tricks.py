"""Do the speed tricks still earn their place? Each is timed against the plain Django way, in one process.

    DJANGO_DEBUG=1 uv run python benchmarks/speed_tricks.py prepared [--rounds 5] [--calls 1000]
    DJANGO_DEBUG=1 uv run python benchmarks/speed_tricks.py encodings [--rounds 7] [--batches 10000]

prepared    dashboard.prepared's compiled-once queries (the row poll's row, and the signed-in user with
            their role) against the same querysets compiled by the ORM at every call: --calls row polls
            through Django's test Client as browsers send them (two unchanged, one render), the same
            with the user loaded at every poll (DASHBOARD_POLL_AUTH_SECONDS=0), and get_user alone.
encodings   batches.writer's hand-made SQLite encodings of datetimes and JSON against Django's own
            conversions (each alone, and both): the database writes of a first sync of --batches batches
            (pages fetched from the simulator once beforehand; no HTTP while timing).

Variants are interleaved round by round (the order rotates), and each is timed in CPU time of this
process (SQLite runs in it), which a machine shared with other work disturbs far less than wall time.
Run on demand; not part of `make bench`. Each trick's comment in the code quotes these figures.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import benchlib
import fakedata

STALE_VERSION = "0000000000000000"


def interleaved(variants: dict[str, Callable[[], None]], cases: dict[str, Callable[[], None]], rounds: int):
    """CPU seconds of each (case, variant), over `rounds` rounds after one warm-up round."""
    names = list(variants)
    times: dict[tuple[str, str], list[float]] = {(case, name): [] for case in cases for name in names}
    for index in range(-1, rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for case, run in cases.items():
            for name in order:
                variants[name]()
                started = time.process_time()
                run()
                if index >= 0:
                    times[case, name].append(time.process_time() - started)
        if index >= 0:
            print(f"round {index + 1}/{rounds} done", flush=True)
    return times


def report(times: dict[tuple[str, str], list[float]], per: int, unit: str) -> None:
    cases = dict.fromkeys(case for case, _ in times)
    for case in cases:
        names = [name for c, name in times if c == case]
        base = statistics.median(times[case, names[0]])
        for name in names:
            spent = times[case, name]
            scale, digits = (1e6, 1) if unit == "us" else (1.0, 3)
            print(
                f"{case:34} {name:14} median {statistics.median(spent) / per * scale:9.{digits}f} {unit}  "
                f"min {min(spent) / per * scale:9.{digits}f} {unit}  ({statistics.median(spent) / base:.2f}x)"
            )


# --- prepared ------------------------------------------------------------------------------------


class _Orm:
    """The plain ORM in place of a PreparedQuery: the queryset built and compiled at every call."""

    def __init__(self, build: Callable[[Any], Any]) -> None:
        self.build = build

    def first(self, value: Any, using: str = "default") -> Any:
        return self.build(value).first()


def prepared(args: argparse.Namespace) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts import backends
    from batches import selectors
    from batches.models import Batch

    fakedata.fill_batches(1_000)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    user = get_user_model().objects.create_superuser("bench-tricks", "", "unused-password-1")
    client = Client()
    client.force_login(user)
    pk = Batch.objects.filter(status="in_progress").values_list("pk", flat=True).first()
    headers = {"HX-Request": "true"}
    page = client.get(f"/batches/{pk}/row/", {"v": STALE_VERSION}, headers=headers).content.decode()
    found = re.search(rf'hx-get="/batches/{pk}/row/\?v=([0-9a-f]+)"', page)
    if found is None:
        raise RuntimeError(f"the row of batch {pk} carries no version to poll with")
    version = found.group(1)
    cycle = [version, version, STALE_VERSION]  # as browsers send it: 204, 204, a render

    row_prepared, user_prepared = selectors._ROW, backends.RoleAwareModelBackend._user_query
    row_orm = _Orm(lambda pk: selectors._row_queryset().filter(pk=pk))
    user_orm = _Orm(backends._user_with_role_rank)

    def use(row: Any, user_query: Any) -> Callable[[], None]:
        def switch() -> None:
            selectors._ROW, backends.RoleAwareModelBackend._user_query = row, user_query

        return switch

    def polls(auth_seconds: float) -> Callable[[], None]:
        def run() -> None:
            settings.POLL_AUTH_SECONDS = auth_seconds
            for index in range(args.calls):
                answer = client.get(f"/batches/{pk}/row/", {"v": cycle[index % 3]}, headers=headers)
                assert answer.status_code in (200, 204), answer.status_code

        return run

    def get_user() -> None:
        backend = backends.RoleAwareModelBackend()
        for _ in range(args.calls):
            backend.get_user(user.pk)

    times = interleaved(
        {
            "prepared": use(row_prepared, user_prepared),
            "orm row": use(row_orm, user_prepared),
            "orm user": use(row_prepared, user_orm),
            "orm both": use(row_orm, user_orm),
        },
        {
            "row poll (who polls reused 2 s)": polls(2.0),
            "row poll (user loaded every poll)": polls(0.0),
            "get_user alone": get_user,
        },
        args.rounds,
    )
    use(row_prepared, user_prepared)()
    report(times, args.calls, "us")


# --- encodings -----------------------------------------------------------------------------------


def encodings(args: argparse.Namespace) -> None:
    from bench_sync import clear_batches, connection_for
    from django.db import transaction
    from django.utils import timezone

    from batches import writer
    from batches.connections import client_for
    from batches.models import Batch
    from simulator import SimWorld, start_in_thread, stop

    server, base_url = start_in_thread(SimWorld(seed=1, batches=args.batches, speed=0))
    connection = connection_for(base_url)
    with client_for(connection) as client:
        pages = [page.data for page in client.list_batch_pages(limit=100)]
    stop(server)

    hand_made = writer._adapters

    def use(datetime_by_hand: bool, json_by_hand: bool) -> Callable[[], None]:
        def adapters(db: Any) -> Any:
            raw = Batch._meta.get_field("raw")
            hand = hand_made(db)
            return writer._Adapters(
                datetime=hand.datetime if datetime_by_hand else db.ops.adapt_datetimefield_value,
                json=hand.json if json_by_hand else (lambda value: raw.get_db_prep_save(value, db)),
            )

        def switch() -> None:
            clear_batches()
            writer._adapters = hand_made if datetime_by_hand and json_by_hand else adapters

        return switch

    def first_sync() -> None:
        for data in pages:
            with transaction.atomic():
                writer.write_page(connection.pk, data, timezone.now(), price=writer.unpriced)

    times = interleaved(
        {
            "hand-made": use(True, True),
            "django": use(False, False),
            "datetime only": use(True, False),
            "json only": use(False, True),
        },
        {f"database writes of a first sync of {args.batches:,}": first_sync},
        args.rounds,
    )
    writer._adapters = hand_made
    report(times, 1, "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trick", choices=("prepared", "encodings"))
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--calls", type=int, default=1_000, help="prepared: calls per round (default 1000)")
    parser.add_argument("--batches", type=int, default=10_000, help="encodings: batches (default 10000)")
    args = parser.parse_args()
    with benchlib.temporary_sqlite(None, "bench-tricks-") as url:
        benchlib.setup_django(url)
        {"prepared": prepared, "encodings": encodings}[args.trick](args)


if __name__ == "__main__":
    main()
