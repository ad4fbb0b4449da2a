"""How fast are the spend page and a full recompute of every batch's cost, at 100,000 batches?

    DJANGO_DEBUG=1 uv run python benchmarks/bench_spend.py [--batches 100000] [--rounds 30]
        [--warmup 3] [--database-url URL] [--json PATH]

Run on demand; it is not part of the test suite. It migrates a fresh SQLite database in a temporary
directory unless --database-url names another (empty) one, fills it with --batches batches as
bench_list does (benchmarks/fakedata.py: nine models, 85 % with a `project` in their metadata, three
connections, finished batches spread over 30 days), then:

  recompute            spend.costs.recompute(): every batch's cost again, as after a price change of
                       every model (one set-based UPDATE per connection and model); timed 3 times
  recompute one model  spend.services-style recompute of the batches one price concerns (gpt-4o-mini)

and times, once per round, the order rotating from round to round (the Django test Client in this
process, signed in as a superuser, DEBUG off):

  list                 GET /                                     the baseline, in the same run
  spend, month         GET /spend/                               this month, by connection
  spend, by model      GET /spend/?period=custom&... (30 days)   every batch of the fill, by model
  spend, by project    GET /spend/?period=custom&...&group=metadata&key=project
  spend, one day       GET /spend/?period=day                    hourly buckets
  spend CSV            GET /spend/export.csv?... (30 days, by project)

The goals (issue 17): every spend request's median under 300 ms, and the recompute of 100,000 batches
under 10 s. The headline also gives each spend request's median over the list page's.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import benchlib
from benchlib import describe_database, ms, now_iso, setup_django, summary, temporary_sqlite, write_json
from fakedata import fill_batches

GOAL_PAGE_S = 0.300
GOAL_RECOMPUTE_S = 10.0
USERNAME = "bench-admin"


@dataclass
class Request:
    key: str
    label: str
    url: str
    seconds: list[float] = field(default_factory=list)
    bytes: int = 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def signed_in_client():
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    user_model = get_user_model()
    user = user_model.objects.create_superuser(USERNAME, "", "unused-password-1")
    client = Client()
    client.force_login(user)
    return client


def requests_to_time() -> list[Request]:
    from django.utils import timezone

    today = timezone.localdate()
    month = f"period=custom&start={today - timedelta(days=30)}&end={today}"
    return [
        Request("list", "list (baseline)", "/"),
        Request("spend_month", "spend, this month by connection", "/spend/"),
        Request("spend_model", "spend, 30 days by model", f"/spend/?{month}&group=model"),
        Request(
            "spend_project",
            "spend, 30 days by metadata project",
            f"/spend/?{month}&group=metadata&key=project",
        ),
        Request("spend_day", "spend, today by hour", "/spend/?period=day&group=endpoint"),
        Request(
            "spend_csv",
            "spend CSV, 30 days by project",
            f"/spend/export.csv?{month}&group=metadata&key=project",
        ),
    ]


def time_recompute(rounds: int = 3) -> dict[str, Any]:
    from batches.models import Batch
    from spend import costs

    full = []
    for _ in range(rounds):
        Batch.objects.update(cost_micros=None)
        started = time.perf_counter()
        written = costs.recompute()
        full.append(time.perf_counter() - started)
    one = []
    for _ in range(rounds):
        started = time.perf_counter()
        one_written = costs.recompute({"gpt-4o-mini"})
        one.append(time.perf_counter() - started)
    priced = Batch.objects.filter(cost_micros__isnull=False).count()
    return {
        "full": summary(full),
        "written": written,
        "one": summary(one),
        "one_written": one_written,
        "priced": priced,
    }


def run_rounds(client, requests: list[Request], rounds: int, warmup: int) -> None:
    for index in range(warmup + rounds):
        gc.collect()
        shift = index % len(requests)
        for request in requests[shift:] + requests[:shift]:
            started = time.perf_counter()
            response = client.get(request.url)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                sys.exit(f"{request.url} answered {response.status_code}")
            if index >= warmup:
                request.seconds.append(elapsed)
                request.bytes = len(response.content)


def figures(
    args, requests: list[Request], fill: dict[str, Any], recompute: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    medians = {request.key: summary(request.seconds) for request in requests}
    baseline = medians["list"]["median"]
    spend_keys = [request.key for request in requests if request.key != "list"]
    worst_key = max(spend_keys, key=lambda key: medians[key]["median"])
    worst = medians[worst_key]["median"]
    full = recompute["full"]["median"]
    met = worst < GOAL_PAGE_S and full < GOAL_RECOMPUTE_S
    rows = [
        [
            request.label,
            ms(medians[request.key]["median"]),
            ms(medians[request.key]["p99"]),
            f"{medians[request.key]['median'] / baseline:.2f}x",
            f"{request.bytes / 1024:.0f}",
        ]
        for request in requests
    ]
    rows.append(
        [
            f"recompute every cost ({recompute['written']:,} rows)",
            f"{full:.2f} s",
            f"{recompute['full']['max']:.2f} s (max)",
            "",
            "",
        ]
    )
    rows.append(
        [
            f"recompute one model ({recompute['one_written']:,} rows)",
            f"{recompute['one']['median']:.2f} s",
            f"{recompute['one']['max']:.2f} s (max)",
            "",
            "",
        ]
    )
    text = (
        f"slowest spend request ({worst_key}) {ms(worst)} median (goal < {GOAL_PAGE_S * 1000:.0f} ms, "
        f"{worst / baseline:.2f}x the list page); recompute of {recompute['written']:,} batches {full:.2f} s "
        f"(goal < {GOAL_RECOMPUTE_S:.0f} s): {'met' if met else 'NOT met'}"
    )
    return {
        "benchmark": "spend",
        "title": f"Spend page and cost recompute at {args.batches:,} batches",
        "date": now_iso(),
        "batches": args.batches,
        "rounds": args.rounds,
        **context,
        "fill": fill,
        "recompute": recompute,
        "measurements": {
            request.key: {"label": request.label, "url": request.url, **medians[request.key]}
            for request in requests
        },
        "table": {"columns": ["request", "median", "p99", "vs list", "KiB"], "rows": rows},
        "notes": [
            f"{args.batches:,} batches (fakedata, bulk_create), of which {recompute['priced']:,} have usage "
            f"and a price; {args.rounds} timed rounds after {args.warmup} warm-up rounds, interleaved; "
            "Django test Client in-process, signed in as a superuser, DEBUG off.",
            "the recompute starts from no stored cost (every row written); its median of 3 runs.",
        ],
        "headline": {
            "name": "spend page and recompute",
            "worst_s": worst,
            "recompute_s": full,
            "met": met,
            "text": text,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with temporary_sqlite(args.database_url, "bench-spend-") as url:
        setup_django(url)
        import django

        from batches.models import Batch

        if Batch.objects.exists():
            sys.exit("refusing to run: the database already holds batches; give it an empty database")
        print(f"filling {args.batches:,} batches ...", flush=True)
        fill = fill_batches(args.batches, progress=True)
        print("recomputing every cost ...", flush=True)
        recompute = time_recompute()
        client = signed_in_client()
        requests = requests_to_time()
        print(
            f"timing {len(requests)} requests x {args.rounds} rounds (+{args.warmup} warm-up) ...", flush=True
        )
        run_rounds(client, requests, args.rounds, args.warmup)
        context = {
            "machine": benchlib.describe_machine(),
            "database": describe_database(),
            "django": django.get_version(),
        }
        data = figures(args, requests, fill, recompute, context)
        benchlib.print_report(data)
        write_json(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
