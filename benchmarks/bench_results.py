"""Does memory stay flat while the dashboard serves a ~100 MB batch output file?

    DJANGO_DEBUG=1 uv run python benchmarks/bench_results.py [--megabytes 100] [--page-size 25]
        [--json PATH]

Run on demand; it is not part of the test suite. It starts the API simulator in a thread of this
process, uploads an embeddings input file to it (text-embedding-3-large, about 42 KB of output per
request) with enough requests for an output file of --megabytes, creates the batch, moves the
simulated clock past its end and mirrors the batch into a fresh SQLite database in a temporary
directory (never var/db.sqlite3). Then, each in a fresh child process of its own (the simulator, which
renders the file on the fly, stays in this one), it measures through Django's test Client signed in
as an operator:

  download   GET /batches/<pk>/files/output/download/, response.streaming_content read chunk by chunk
  preview    GET /batches/<pk>/files/output/?page=<last>: the page at the very end of the file, so
             every line before it is streamed past

Each child first warms up on the batch's small input file (same views, same templates), so that
imports, template compilation and the database connection are paid before measuring; its RSS then
is the "idle process" figure. Measured, each in its own child: the growth of peak RSS over that idle
RSS (Linux: VmHWM after resetting it through /proc/self/clear_refs; elsewhere the growth of
ru_maxrss), and the peak of the traced Python heap (tracemalloc, in a separate child because it slows
Python down). The goal is < 64 MB above the idle process; the script prints the figures and, with
--json, writes them. Nothing is asserted beyond the download being complete and the page correct.
As in production, Django's cache is on Redis: a private redis-server on loopback (benchlib.start_redis)
that this process and every probe share.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import benchlib
import memory

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "BENCH_RESULTS_API_KEY"
KEY = "sk-bench-results"
USERNAME = "bench-operator"
GOAL_MIB = 64
PROBE_PREFIX = "PROBE-RESULT "
EMBEDDING_MODEL = "text-embedding-3-large"
OPERATIONS = ("download", "preview")


# --- set-up ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=100.0, help="output file size (default 100)")
    parser.add_argument("--page-size", type=int, default=25, choices=(10, 25, 50, 100))
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    # Used by this script to run one probe in a child process.
    parser.add_argument("--probe", choices=OPERATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--probe-mode", choices=("rss", "heap"), help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--batch-pk", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.megabytes <= 0:
        parser.error("--megabytes must be > 0")
    return args


def setup_django(database_url: str, *, migrate: bool) -> None:
    os.environ[KEY_ENV] = KEY
    # Redis as in production (the probes, child processes, reuse this one).
    benchlib.setup_django(database_url, migrate=migrate)
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]


def _quiet_disconnects(server) -> None:
    """The preview stops reading once its page is shown and drops the connection, as it should; the
    simulator's http.server would print a traceback for each such reset."""
    report_error = server.handle_error

    def handle_error(request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            report_error(request, client_address)

    server.handle_error = handle_error


def make_output_file(megabytes: float) -> tuple[Any, Any, int]:
    """Start the simulator and run an embeddings batch whose output file is about `megabytes`.

    Returns the server, the mirrored batch and the output file's size."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from batches import sync
    from batches.connections import client_for
    from batches.models import Batch, Connection
    from simulator.server import start_in_thread
    from simulator.state import SimWorld

    world = SimWorld(seed=1, batches=0, speed=0)
    server, base_url = start_in_thread(world)
    _quiet_disconnects(server)
    connection = Connection.objects.create(name="bench-simulator", base_url=base_url, api_key_env=KEY_ENV)
    User.objects.create_superuser(USERNAME, password="not-used-bench-pw")
    target = int(megabytes * 1_000_000)
    per_request: float = 42_000  # measured for this model; corrected below if the file comes out short
    with client_for(connection) as client:
        for _ in range(5):
            # A few requests fail at random in the simulator; ask for 3 % more to land above target.
            count = max(1, math.ceil(target / per_request * 1.03))
            lines = (
                json.dumps(
                    {
                        "custom_id": f"doc-{i:06d}",
                        "method": "POST",
                        "url": "/v1/embeddings",
                        "body": {"model": EMBEDDING_MODEL, "input": f"Benchmark document number {i}."},
                    }
                )
                for i in range(count)
            )
            uploaded = client.upload_file(filename="bench.jsonl", content="\n".join(lines).encode() + b"\n")
            created = client.create_batch(input_file_id=uploaded.id, endpoint="/v1/embeddings")
            world.advance(world.plan(created.id)["final_at"] - world.now() + 1)
            done = client.retrieve_batch(created.id)
            if done.output_file_id is None or done.request_counts is None:
                raise RuntimeError(f"the simulated batch ended {done.status}, without its output")
            size = client.retrieve_file(done.output_file_id).bytes or 0
            if size >= target * 0.98:
                break
            per_request = size / max(1, done.request_counts.completed)
    sync.upsert_batches(connection, [done], observed_at=timezone.now())
    batch = Batch.objects.select_related("connection").get(connection=connection, batch_id=done.id)
    return server, batch, size


def simulator_alone(batch) -> float:
    """Seconds to read the file straight from the simulator, no dashboard: the ceiling on throughput."""
    from batches.connections import client_for

    started = time.perf_counter()
    with (
        client_for(batch.connection) as client,
        client.stream_file_content(batch.output_file_id) as chunks,
    ):
        for _ in chunks:
            pass
    return time.perf_counter() - started


# --- one probe, in a child process -----------------------------------------------------------------


def _download(client, batch, kind: str) -> dict[str, Any]:
    response = client.get(f"/batches/{batch.pk}/files/{kind}/download/")
    if response.status_code != 200 or not response.streaming:
        raise RuntimeError(f"download answered {response.status_code}")
    total = chunks = largest = 0
    for chunk in response.streaming_content:
        total += len(chunk)
        chunks += 1
        largest = max(largest, len(chunk))
    response.close()
    expected = int(response["Content-Length"])
    if total != expected:
        raise RuntimeError(f"downloaded {total} bytes, the file has {expected}")
    return {"bytes": total, "chunks": chunks, "largest_chunk": largest}


def _preview(client, batch, kind: str, page: int, page_size: int) -> dict[str, Any]:
    response = client.get(f"/batches/{batch.pk}/files/{kind}/?page={page}&size={page_size}")
    body = response.content.decode()
    numbers = [int(n.replace(",", "")) for n in re.findall(r'<td class="num">([\d,]+)</td>', body)]
    if response.status_code != 200 or not numbers or numbers[0] != (page - 1) * page_size + 1:
        raise RuntimeError(f"preview answered {response.status_code} with lines {numbers[:3]}...")
    return {"page": page, "first_line": numbers[0], "lines_shown": len(numbers)}


def probe(args: argparse.Namespace) -> int:
    setup_django(args.database_url, migrate=False)
    from django.contrib.auth.models import User
    from django.test import Client

    from batches.models import Batch

    batch = Batch.objects.select_related("connection").get(pk=args.batch_pk)
    client = Client()
    client.force_login(User.objects.get(username=USERNAME))
    last_page = max(1, math.ceil(batch.completed_requests / args.page_size))

    def run() -> dict[str, Any]:
        if args.probe == "download":
            return _download(client, batch, "output")
        return _preview(client, batch, "output", last_page, args.page_size)

    # Warm up on the small input file through the same views and templates.
    _download(client, batch, "input")
    _preview(client, batch, "input", 1, args.page_size)
    gc.collect()
    idle_kib = memory.status_kib("VmRSS") or memory.max_rss_kib()
    figures: dict[str, Any] = {"idle_rss_kib": idle_kib}
    if args.probe_mode == "heap":
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        figures.update(run())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        figures["heap_peak_bytes"] = peak - base
    else:
        outcome, measured = memory.rss_growth(run)
        figures.update(outcome)
        figures.update(measured)
    print(PROBE_PREFIX + json.dumps(figures), flush=True)
    return 0


def run_probe(args: argparse.Namespace, database_url: str, batch_pk: int, operation: str, mode: str) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--database-url={database_url}",
        f"--batch-pk={batch_pk}",
        f"--page-size={args.page_size}",
        f"--probe={operation}",
        f"--probe-mode={mode}",
    ]
    env = {**os.environ, KEY_ENV: KEY}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=REPO)
    for line in done.stdout.splitlines():
        if line.startswith(PROBE_PREFIX):
            return json.loads(line.removeprefix(PROBE_PREFIX))
    raise RuntimeError(f"probe {operation}/{mode} failed:\n{done.stdout}\n{done.stderr}")


# --- report ----------------------------------------------------------------------------------------


def mib(kib_or_bytes: float, *, kib: bool = True) -> float:
    return kib_or_bytes / 1024 if kib else kib_or_bytes / (1024 * 1024)


def report(size: int, figures: dict[str, dict[str, dict]], raw_seconds: float) -> str:
    rows = [
        f"Output file: {size:,} bytes ({size / 1_000_000:.1f} MB), served by the simulator in this process",
        f"Read straight from the simulator, no dashboard: {raw_seconds:.2f} s "
        f"({size / 1_000_000 / raw_seconds:.1f} MB/s), the ceiling for both operations",
        "",
        f"{'operation':<10} {'seconds':>8} {'MB/s':>7} {'idle RSS':>10} {'RSS growth':>11} "
        f"{'heap peak':>10}  goal < {GOAL_MIB} MiB",
    ]
    for operation in OPERATIONS:
        rss, heap = figures[operation]["rss"], figures[operation]["heap"]
        growth = mib(rss["rss_growth_kib"])
        heap_peak = mib(heap["heap_peak_bytes"], kib=False)
        seconds = rss["seconds"]
        throughput = f"{size / 1_000_000 / seconds:7.1f}" if seconds else "      -"
        verdict = "ok" if max(growth, heap_peak) < GOAL_MIB else "OVER"
        rows.append(
            f"{operation:<10} {seconds:8.2f} {throughput} {mib(rss['idle_rss_kib']):8.1f} MiB "
            f"{growth:7.1f} MiB {heap_peak:6.1f} MiB  {verdict}"
        )
    download = figures["download"]["rss"]
    preview = figures["preview"]["rss"]
    rows += [
        "",
        f"download: {download['chunks']:,} chunks, the largest {download['largest_chunk']:,} bytes",
        f"preview: page {preview['page']:,}, from line {preview['first_line']:,}, "
        f"{preview['lines_shown']} lines shown",
        f"peak RSS measured by {download['method']}; each probe ran in a fresh child process",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.probe:
        return probe(args)
    with tempfile.TemporaryDirectory(prefix="bench-results-") as workdir:
        database_url = f"sqlite:///{Path(workdir) / 'bench.sqlite3'}"
        setup_django(database_url, migrate=True)
        print(f"Preparing a {args.megabytes:g} MB output file in the simulator ...", flush=True)
        server, batch, size = make_output_file(args.megabytes)
        batch_pk = batch.pk
        try:
            raw_seconds = simulator_alone(batch)
            figures: dict[str, dict[str, dict]] = {}
            for operation in OPERATIONS:
                figures[operation] = {}
                for mode in ("rss", "heap"):
                    print(f"  {operation} ({'peak RSS' if mode == 'rss' else 'tracemalloc'}) ...", flush=True)
                    figures[operation][mode] = run_probe(args, database_url, batch_pk, operation, mode)
        finally:
            from simulator.server import stop

            stop(server)
    print()
    print(report(size, figures, raw_seconds))
    if args.json:
        document = {
            "file_bytes": size,
            "simulator_alone_seconds": raw_seconds,
            "goal_mib": GOAL_MIB,
            "figures": figures,
        }
        args.json.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
