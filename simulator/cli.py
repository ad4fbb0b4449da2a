"""The simulator as a process: `python -m simulator`, and `manage.py simulate_api` through it.

Prints exactly one line on stdout, the base URL (ending in /v1), once the port is listening, so a
supervisor can read it; everything else goes to stderr. Serves until SIGTERM or SIGINT, then exits
with status 0.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from argparse import ArgumentParser, ArgumentTypeError
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

from simulator.faults import FaultConfig
from simulator.server import make_server
from simulator.state import SimWorld
from simulator.webhooks import WebhookSender

DESCRIPTION = "Serve a simulated OpenAI Batch and Files API (with optional fault injection)."


class UsageError(Exception):
    """An option the simulator cannot run with, in words for the command line."""


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _cancel_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition(",")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        raise ArgumentTypeError(f"expected SECONDS or MIN,MAX, got {text!r}") from None
    if not 0 < bounds[0] <= bounds[1]:
        raise ArgumentTypeError(f"expected 0 < MIN <= MAX, got {text!r}")
    return bounds


def add_arguments(parser: ArgumentParser) -> None:
    """The options both entry points share (the management command adds Django's own)."""
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--batches", type=int, default=0, help="seeded batches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed", type=_non_negative, default=1.0, help="simulated seconds per wall second")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    parser.add_argument("--fail-rate-429", type=_rate, default=0.0)
    parser.add_argument("--fail-rate-5xx", type=_rate, default=0.0)
    parser.add_argument("--slow-rate", type=_rate, default=0.0)
    parser.add_argument("--slow-seconds", type=_non_negative, default=2.0)
    parser.add_argument("--cutoff-rate", type=_rate, default=0.0)
    parser.add_argument(
        "--cancel-seconds",
        type=_cancel_range,
        default=(60, 600),
        metavar="MIN[,MAX]",
        help="how long a cancelled batch stays cancelling (simulated seconds)",
    )
    parser.add_argument(
        "--wall-clock-timestamps",
        action="store_true",
        help="show every time the API sends mapped back onto the wall clock "
        "(origin + (t - origin) / speed), so a fast clock never shows times in the future; "
        "/_sim/advance and /_sim/plan stay in simulated seconds",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="load from and save to this JSON file; an existing file's seed and batches win",
    )
    parser.add_argument(
        "--webhook-url",
        default=None,
        help="POST OpenAI-style signed webhooks (batch.completed, .failed, .expired, .cancelled) here",
    )
    parser.add_argument(
        "--webhook-secret-env",
        default="OPENAI_WEBHOOK_SECRET",
        metavar="NAME",
        help='the environment variable holding the signing secret ("whsec_..."; not a flag, which '
        "any user could read in the process list)",
    )


@dataclass(frozen=True)
class Options:
    """The parsed options, named as argparse names them (`--fail-rate-429` is `fail_rate_429`)."""

    port: int = 0
    host: str = "127.0.0.1"
    batches: int = 0
    seed: int = 0
    speed: float = 1.0
    api_key: str | None = None
    fail_rate_429: float = 0.0
    fail_rate_5xx: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    cutoff_rate: float = 0.0
    cancel_seconds: tuple[int, int] = (60, 600)
    wall_clock_timestamps: bool = False
    state_file: Path | None = None
    webhook_url: str | None = None
    webhook_secret_env: str = "OPENAI_WEBHOOK_SECRET"
    verbose: bool = False  # log every request to stderr

    @classmethod
    def from_parsed(cls, values: Mapping[str, Any], *, verbose: bool = False) -> Options:
        """The options out of argparse's result; other entries (Django's own) are ignored."""
        names = {f.name for f in fields(cls)} - {"verbose"}
        return cls(**{name: values[name] for name in names if name in values}, verbose=verbose)


def serve(options: Options, *, name: str = "simulator") -> None:
    """Serve until SIGTERM or SIGINT; `name` starts every line written to stderr.

    Raises UsageError for options it cannot run with (before anything is listening).
    """
    if options.batches < 0:
        raise UsageError("--batches must be >= 0")
    try:
        faults = FaultConfig(
            rate_429=options.fail_rate_429,
            rate_5xx=options.fail_rate_5xx,
            rate_slow=options.slow_rate,
            slow_seconds=options.slow_seconds,
            rate_cutoff=options.cutoff_rate,
            seed=options.seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    started = time.monotonic()
    state_file = options.state_file
    if state_file is not None and state_file.exists():
        world = SimWorld.load(
            state_file,
            speed=options.speed,
            cancel_delay=options.cancel_seconds,
            wall_clock_timestamps=options.wall_clock_timestamps,
        )
    else:
        world = SimWorld(
            seed=options.seed,
            batches=options.batches,
            speed=options.speed,
            cancel_delay=options.cancel_seconds,
            state_file=state_file,
            wall_clock_timestamps=options.wall_clock_timestamps,
        )
        world.save()
    try:
        server = make_server(options.host, options.port, world, api_key=options.api_key, faults=faults)
    except OSError as exc:
        raise UsageError(f"cannot listen on {options.host}:{options.port}: {exc}") from None
    server.verbose = options.verbose
    webhooks = None
    if options.webhook_url:
        try:
            webhooks = WebhookSender(
                world, options.webhook_url, os.environ.get(options.webhook_secret_env, "")
            )
        except ValueError as exc:
            server.server_close()
            raise UsageError(f"{options.webhook_secret_env}: {exc}") from None
        webhooks.start()

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    sys.stdout.write(server.base_url + "\n")
    sys.stdout.flush()
    shown = ", timestamps on the wall clock" if world.wall_clock_timestamps else ""
    if webhooks is not None:
        shown += f", webhooks to {options.webhook_url}"
    sys.stderr.write(
        f"{name}: {len(world.batch_ids())} batches (seed {world.seed}, speed "
        f"{options.speed:g}x{shown}) ready in {time.monotonic() - started:.2f} s; "
        "SIGTERM or Ctrl-C stops it\n"
    )
    sys.stderr.flush()
    # Event.wait with a timeout keeps the main thread responsive to signals everywhere.
    while not stopping.wait(0.5):
        pass
    if webhooks is not None:
        webhooks.stop()
    server.shutdown()
    server.server_close()
    world.save()
    sys.stderr.write(f"{name}: stopped\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m simulator [options]`; the exit status."""
    parser = ArgumentParser(prog="python -m simulator", description=DESCRIPTION)
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    values = parser.parse_args(argv)
    try:
        serve(Options.from_parsed(vars(values), verbose=values.verbose))
    except UsageError as exc:
        sys.stderr.write(f"simulator: {exc}\n")
        return 1
    return 0
