"""Run every benchmarks/bench_*.py in turn, each in its own process, and print its output.

    DJANGO_DEBUG=1 uv run python benchmarks/run_all.py [--json-dir DIR] [NAME ...]

NAME picks benchmarks by name (`sync` or `bench_sync`); with none, all of them run, in name order.
With --json-dir, each benchmark is also asked to write its figures to DIR/<name>.json (so every
bench_*.py must accept `--json PATH`). A benchmark that fails does not stop the others; the exit
status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def discover() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def short_name(path: Path) -> str:
    return path.stem.removeprefix("bench_")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--json-dir", type=Path, help="write each benchmark's figures to DIR/<name>.json")
    args = parser.parse_args(argv)

    benchmarks = discover()
    if args.names:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in args.names}
        unknown = wanted - {short_name(path) for path in benchmarks}
        if unknown:
            known = ", ".join(short_name(path) for path in benchmarks) or "none"
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))} (known: {known})")
        benchmarks = [path for path in benchmarks if short_name(path) in wanted]
    if not benchmarks:
        print(f"no benchmarks found in {HERE} (expected bench_*.py files)")
        return 0
    if args.json_dir:
        args.json_dir.mkdir(parents=True, exist_ok=True)

    outcomes: list[tuple[str, int, float]] = []
    for path in benchmarks:
        name = short_name(path)
        command = [sys.executable, str(path)]
        if args.json_dir:
            command += ["--json", str((args.json_dir / f"{name}.json").resolve())]
        print(f"=== {path.relative_to(REPO)} ===", flush=True)
        started = time.monotonic()
        # Output goes straight through, so that a long benchmark shows its progress as it runs.
        with subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                print(line, end="", flush=True)
        elapsed = time.monotonic() - started
        outcomes.append((name, process.returncode, elapsed))
        status = "ok" if process.returncode == 0 else f"FAILED (exit status {process.returncode})"
        print(f"=== {name}: {status} in {elapsed:.1f} s ===\n", flush=True)

    if len(outcomes) > 1:
        print("summary:")
        for name, code, elapsed in outcomes:
            print(f"  {name:<24} {'ok' if code == 0 else f'FAILED ({code})':<12} {elapsed:7.1f} s")
    return 1 if any(code != 0 for _, code, _ in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
