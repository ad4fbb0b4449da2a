"""What open pages' push streams cost the events server: memory and CPU of N idle Server-Sent Events streams.

    DJANGO_DEBUG=1 uv run python benchmarks/bench_event_streams.py [--streams 2000] [--idle-seconds 30]
        [--json PATH]

Every open page keeps one stream to the events server (batches/views_events.py; issue 16's open-tabs goal
is 2,000 tabs), which holds it idle for minutes. This starts the events server as deployed (gunicorn's ASGI
worker with deploy/gunicorn_events.conf.py, one worker process, production settings, a private Redis, a
fresh SQLite file), signs one user in, and measures its worker process (Linux /proc: RSS, user + system
CPU time):

  baseline   after one warm-up stream opened and closed (Django's views and the hub loaded)
  connect    --streams streams opened by one asyncio client on loopback (each its own TCP connection,
             authenticated from the session as a browser's is): the CPU spent per connect
  idle       the streams held open for --idle-seconds, heartbeats every 15 s: the CPU share of a core
  fan-out    one change published as the writer does (batches.live.bump): the time until every stream
             has its event, and the CPU it took

Streams are set to last longer than the run (LIVE_EVENTS_STREAM_SECONDS), so no reconnect falls inside
it; in production each stream ends after about 3 minutes, one reconnect per page every ~3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    Children,
    describe_machine,
    free_port,
    now_iso,
    print_report,
    production_env,
    setup_django,
    start_redis,
    temporary_sqlite,
    write_json,
)
from httpload import gunicorn_pids, process_cpu_seconds
from livestack import start_events

OPEN_AT_ONCE = 50
CHANGE = b"event: change"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=2000, help="open streams (default 2000)")
    parser.add_argument(
        "--idle-seconds", type=float, default=30.0, help="how long they are held idle (default 30)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.idle_seconds <= 0:
        parser.error("--streams >= 1 and --idle-seconds > 0")
    return args


def status_field(pid: int, name: str) -> int:
    """A number from /proc/PID/status (VmRSS in KiB, Threads)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    return status_field(pid, "VmRSS")


class Stream:
    """One open stream, read until it is closed; notes when its first change event arrived."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        buffer = b""
        while chunk := await self.reader.read(4096):
            buffer = (buffer + chunk)[-256:]
            if CHANGE in buffer:
                self.changed.set()

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.writer.close()


async def open_stream(port: int, cookie: str) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /live/events/?w=all HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        b"Cookie: " + cookie.encode() + b"\r\n\r\n"
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the events server refused a stream: {head[:200]!r}")
    received = b""
    while b"connected" not in received:
        received += await reader.read(4096)
    stream = Stream(reader, writer)
    stream.task = asyncio.get_running_loop().create_task(stream.read())
    return stream


async def measure(args: argparse.Namespace, port: int, cookie: str, worker: int) -> dict[str, Any]:
    from batches import live

    warm = await open_stream(port, cookie)
    warm.close()
    await asyncio.sleep(1.0)
    figures: dict[str, Any] = {
        "baseline_rss_kib": rss_kib(worker),
        "baseline_threads": status_field(worker, "Threads"),
    }

    cpu, started = process_cpu_seconds([worker]), time.monotonic()
    streams: list[Stream] = []
    for first in range(0, args.streams, OPEN_AT_ONCE):
        count = min(OPEN_AT_ONCE, args.streams - first)
        streams += await asyncio.gather(*(open_stream(port, cookie) for _ in range(count)))
    figures["connect_seconds"] = time.monotonic() - started
    figures["connect_cpu_seconds"] = process_cpu_seconds([worker]) - cpu
    await asyncio.sleep(1.0)
    figures["open_rss_kib"] = rss_kib(worker)
    figures["open_threads"] = status_field(worker, "Threads")

    cpu = process_cpu_seconds([worker])
    await asyncio.sleep(args.idle_seconds)
    figures["idle_cpu_seconds"] = process_cpu_seconds([worker]) - cpu
    figures["idle_rss_kib"] = rss_kib(worker)

    cpu, started = process_cpu_seconds([worker]), time.monotonic()
    await asyncio.to_thread(live._bump_now, 1)
    await asyncio.wait_for(asyncio.gather(*(stream.changed.wait() for stream in streams)), 60)
    figures["fanout_seconds"] = time.monotonic() - started
    await asyncio.sleep(0.5)
    figures["fanout_cpu_seconds"] = process_cpu_seconds([worker]) - cpu
    for stream in streams:
        stream.close()
    return figures


def figures_of(args: argparse.Namespace, measured: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    n = args.streams
    baseline, held = measured["baseline_rss_kib"], max(measured["open_rss_kib"], measured["idle_rss_kib"])
    per_stream_kib = (held - baseline) / n
    idle_share = measured["idle_cpu_seconds"] / args.idle_seconds
    connect_ms = measured["connect_cpu_seconds"] / n * 1000
    text = (
        f"{n:,} idle streams: +{(held - baseline) / 1024:.1f} MiB ({per_stream_kib:.1f} KiB each, "
        f"{held / baseline:.2f}x the idle process), {idle_share * 100:.1f}% of a core while idle, "
        f"{connect_ms:.2f} ms of CPU per connect, "
        f"one change to all in {measured['fanout_seconds'] * 1000:.0f} ms"
    )
    rows = [
        ["events worker, idle (after one warm-up stream)", f"{baseline / 1024:.1f} MiB", "-", "-"],
        [
            f"{n:,} streams opened ({measured['connect_seconds']:.1f} s)",
            f"{measured['open_rss_kib'] / 1024:.1f} MiB",
            f"{measured['connect_cpu_seconds']:.2f} s",
            f"{connect_ms:.2f} ms/stream",
        ],
        [
            f"held idle {args.idle_seconds:g} s (heartbeat every 15 s)",
            f"{measured['idle_rss_kib'] / 1024:.1f} MiB",
            f"{measured['idle_cpu_seconds']:.2f} s",
            f"{idle_share * 100:.2f}% of a core",
        ],
        [
            f"one change to all {n:,} ({measured['fanout_seconds'] * 1000:.0f} ms)",
            "-",
            f"{measured['fanout_cpu_seconds']:.2f} s",
            f"{measured['fanout_cpu_seconds'] / n * 1e6:.0f} µs/stream",
        ],
    ]
    return {
        "benchmark": "event_streams",
        "title": f"Push streams: {n:,} open idle Server-Sent Events streams on one events server process",
        "date": now_iso(),
        "streams": n,
        "idle_seconds": args.idle_seconds,
        **context,
        "measured": measured,
        "table": {"columns": ["phase", "worker RSS", "worker CPU", "per"], "rows": rows},
        "notes": [
            "events server: gunicorn's ASGI worker (deploy/gunicorn_events.conf.py), one worker process, "
            "production settings, a private Redis, SQLite; one Redis subscription for every stream.",
            "client: one asyncio process on the same machine, one TCP connection per stream, each "
            "authenticated by the session cookie as a browser's is; streams watch every connection.",
            "RSS and CPU are the worker process's (Linux /proc); the gunicorn master is not counted.",
        ],
        "headline": {
            "name": "idle streams' cost",
            "per_stream_kib": per_stream_kib,
            "idle_core_share": idle_share,
            "connect_cpu_ms": connect_ms,
            "fanout_s": measured["fanout_seconds"],
            "text": text,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.streams * 2 + 200  # this client's sockets and the server's, which inherits the limit
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="bench-event-streams-"))
    try:
        with temporary_sqlite(None, "bench-event-streams-db-") as database_url:
            setup_django(database_url)
            from django.conf import settings
            from django.contrib.auth import get_user_model
            from django.test import Client

            from accounts.roles import VIEWER, set_role

            user = get_user_model().objects.create_user("bench-streams", password="bench-streams-pw-1")
            set_role(user, VIEWER)
            client = Client()
            client.force_login(user)
            cookie = f"sessionid={client.cookies['sessionid'].value}"
            port = free_port()
            env = production_env(
                database_url,
                start_redis(),
                DASHBOARD_EVENTS_BIND=f"127.0.0.1:{port}",
                LIVE_EVENTS_STREAM_SECONDS="3600",
                # The session was made here: the server must check it with the same key.
                DJANGO_SECRET_KEY=settings.SECRET_KEY,
            )
            start_events(children, workdir, env)
            master = children.processes[-1][1].pid
            workers = gunicorn_pids(master)[1:]
            if len(workers) != 1:
                raise RuntimeError(f"expected one events worker, found {workers}")
            measured = asyncio.run(measure(args, port, cookie, workers[0]))
            context = {"machine": describe_machine(), "django": __import__("django").get_version()}
            data = figures_of(args, measured, context)
            print_report(data)
            write_json(args.json, data)
    finally:
        children.close()
        with contextlib.suppress(OSError):
            for path in workdir.iterdir():
                path.unlink()
            workdir.rmdir()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_DEBUG", "1")
    sys.exit(main())
