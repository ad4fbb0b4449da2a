"""Run every benchmarks/bench_*.py in turn, each in its own process, and write docs/benchmarks.md.

    DJANGO_DEBUG=1 uv run python benchmarks/run_all.py [NAME ...] [--skip NAME] [--json-dir DIR]
        [--output PATH] [--pass NAME=ARGS] [--render-only] [--no-docs]

NAME picks benchmarks by name (`list` or `bench_list`); with none, all of them run, in name order;
--skip leaves some out. Each benchmark writes its figures to DIR/<name>.json (so every bench_*.py must
accept `--json PATH`; DIR defaults to var/benchmarks/) and its output goes to the terminal and to
DIR/<name>.log. --pass gives one benchmark extra arguments, e.g. --pass freshness="--changes 20".

Afterwards docs/benchmarks.md (or --output) is written from every DIR/<name>.json there is: the
machine, the date, and per benchmark its table and headline (the goal, met or not). Running a subset
therefore updates those sections and keeps the others from their earlier runs (each says when it ran).
--render-only writes the document from the JSON already in DIR without running anything; --no-docs
runs without writing it. A benchmark that fails does not stop the others; the exit status is non-zero
if any failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_JSON_DIR = REPO / "var" / "benchmarks"
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"
# The order of docs/benchmarks.md (issue 9's); benchmarks not named here follow in name order.
DOC_ORDER = (
    "poll_load",
    "open_tabs",
    "list",
    "spend",
    "sync",
    "freshness",
    "event_streams",
    "api_budget",
    "results",
    "upload",
    "bulk_cancel",
    "year",
)


def discover() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def short_name(path: Path) -> str:
    return path.stem.removeprefix("bench_")


def normalise(name: str) -> str:
    return name.removeprefix("bench_").removesuffix(".py")


# --- running ------------------------------------------------------------------------------------------


def run_one(path: Path, json_dir: Path, extra: list[str]) -> tuple[int, float]:
    name = short_name(path)
    command = [sys.executable, str(path), "--json", str((json_dir / f"{name}.json").resolve()), *extra]
    print(f"=== {' '.join([str(path.relative_to(REPO)), *extra])} ===", flush=True)
    started = time.monotonic()
    # Output goes straight through, so that a long benchmark shows its progress as it runs, and to a log.
    with (
        (json_dir / f"{name}.log").open("w") as log,
        subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            log.write(line)
    elapsed = time.monotonic() - started
    status = "ok" if process.returncode == 0 else f"FAILED (exit status {process.returncode})"
    print(f"=== {name}: {status} in {elapsed:.1f} s ===\n", flush=True)
    return process.returncode, elapsed


# --- rendering ---------------------------------------------------------------------------------------------


def markdown_table(columns: list[str], rows: list[list[Any]], *, numbers: bool = True) -> str:
    """A GitHub table; with `numbers`, every column but the first is right-aligned."""

    def cell(value: Any) -> str:
        # "<pk>" would read as an HTML tag and vanish; arrows like "->" are left alone.
        return re.sub(r"<(?=[A-Za-z/!])", "&lt;", str(value).replace("|", "\\|"))

    aligns = ["---"] + ["---:" if numbers else "---"] * (len(columns) - 1)
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def file_date(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_generic(data: dict[str, Any]) -> tuple[str, list[str], dict[str, Any]]:
    """Benchmarks that describe themselves: title, table, notes, headline (bench_list, bench_poll_load,
    bench_freshness)."""
    body = [markdown_table(data["table"]["columns"], data["table"]["rows"])]
    if data.get("notes"):
        body.append("\n".join(f"- {note}" for note in data["notes"]))
    return data["title"], body, data["headline"]


def render_sync(data: dict[str, Any]) -> tuple[str, list[str], dict[str, Any]]:
    def mib(value: float | None, unit: int) -> str:
        return "n/a" if value is None else f"{value * unit / 2**20:.1f} MiB"

    rows = [
        [
            row["label"],
            f"{row['median_s']:.3f} s",
            f"{row['min_s']:.3f} s",
            f"{row['per_batch_us']:.1f}",
            f"{row['api_calls']:g}",
            f"{row['db_queries']:g}",
            mib(row.get("rss_growth_kib"), 1024),
            mib(row.get("heap_peak_bytes"), 1),
        ]
        for row in data["measurements"].values()
    ]
    columns = [
        "measurement",
        "median",
        "min",
        "µs/batch",
        "API calls",
        "SQL stmts",
        "peak RSS +",
        "heap peak",
    ]
    headline = data["headline"]
    verdict = "met" if headline["met"] else "NOT met"
    text = (
        f"full sync / SDK list = {headline['ratio']:.2f} (medians; {headline['ratio_of_mins']:.2f} on "
        f"minimums); goal <= {headline['goal']}: {verdict}"
    )
    database = data.get("database", {})
    notes = [
        f"{data['batches']:,} simulated batches (simulator in a thread, frozen clock), "
        f"{data['repeat']} timed round(s) after {data['warmup']} warm-up round(s), interleaved; "
        "Django DEBUG off.",
        f"database: {database.get('vendor', '?')} {database.get('version', '')} "
        f"({database.get('journal_mode', '')}); software: "
        + ", ".join(f"{k} {v}" for k, v in (data.get("software") or {}).items() if v),
        "peak RSS +: growth of the peak RSS over the RSS before the operation; heap peak: tracemalloc; "
        "each measured once in a fresh process.",
    ]
    body = [markdown_table(columns, rows), "\n".join(f"- {note}" for note in notes)]
    return (
        f"Full sync of {data['batches']:,} batches vs the official SDK listing them",
        body,
        {**headline, "text": text},
    )


def render_results(data: dict[str, Any]) -> tuple[str, list[str], dict[str, Any]]:
    goal = data["goal_mib"]
    rows, worst = [], 0.0
    for operation, modes in data["figures"].items():
        rss, heap = modes["rss"], modes["heap"]
        growth = rss["rss_growth_kib"] / 1024
        heap_peak = heap["heap_peak_bytes"] / 2**20
        worst = max(worst, growth, heap_peak)
        seconds = rss.get("seconds") or 0
        rate = f"{data['file_bytes'] / 1e6 / seconds:.1f}" if seconds else "-"
        rows.append(
            [
                operation,
                f"{seconds:.2f} s",
                rate,
                f"{rss['idle_rss_kib'] / 1024:.1f} MiB",
                f"{growth:.1f} MiB",
                f"{heap_peak:.1f} MiB",
            ]
        )
    met = worst < goal
    columns = ["operation", "seconds", "MB/s", "idle RSS", "RSS growth", "heap peak"]
    notes = [
        f"a {data['file_bytes'] / 1e6:.1f} MB output file served by the simulator in the benchmark's "
        f"process; read straight from the simulator in {data['simulator_alone_seconds']:.2f} s "
        "(the ceiling).",
        "each operation measured in a fresh child process, through Django's test Client.",
    ]
    text = f"largest memory growth {worst:.1f} MiB (goal < {goal} MiB): {'met' if met else 'NOT met'}"
    return (
        f"Serving a {data['file_bytes'] / 1e6:.0f} MB batch output file: memory stays flat",
        [markdown_table(columns, rows), "\n".join(f"- {note}" for note in notes)],
        {"met": met, "text": text},
    )


RENDERERS = {"sync": render_sync, "results": render_results}


def render_section(
    name: str, json_path: Path, log_path: Path, outcome: tuple[int, float] | None
) -> tuple[str, dict]:
    lines = [f"## {name}", ""]
    status: dict[str, Any] = {"name": name, "met": None, "headline": "no figures", "date": "-"}
    if outcome is not None and outcome[0] != 0:
        lines.append(
            f"**The run of {datetime.now(UTC):%Y-%m-%d} failed** (exit status {outcome[0]}); "
            + (
                "the figures below are from an earlier run."
                if json_path.exists()
                else "there are no figures."
            )
        )
        lines.append("")
        if log_path.exists():
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            lines += ["```", *tail, "```", ""]
    if not json_path.exists():
        return "\n".join(lines), status
    data = json.loads(json_path.read_text())
    date = data.get("date") or file_date(json_path)
    try:
        title, body, headline = (RENDERERS.get(name) or render_generic)(data)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        lines += [f"(figures in {json_path.name} could not be rendered: {error!r})", ""]
        return "\n".join(lines), status
    script = f"benchmarks/bench_{name}.py"
    lines[0] = f"## {title}"
    lines += [f"`{script}`, run {date}.", ""]
    for part in body:
        lines += [part, ""]
    verdict = "met" if headline.get("met") else "**NOT met**"
    lines += [f"**Headline:** {headline['text'].replace(': NOT met', ': **NOT met**')}", ""]
    status.update(title=title, met=headline.get("met"), headline=headline["text"], date=date, verdict=verdict)
    return "\n".join(lines), status


def describe_machine() -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    try:
        from machine import describe_machine as describe
    finally:
        sys.path.remove(str(HERE))
    return describe()


def render(json_dir: Path, output: Path, outcomes: dict[str, tuple[int, float]]) -> None:
    known = [short_name(path) for path in discover()]
    names = [name for name in DOC_ORDER if name in known] + sorted(set(known) - set(DOC_ORDER))
    sections, statuses = [], []
    for name in names:
        section, status = render_section(
            name, json_dir / f"{name}.json", json_dir / f"{name}.log", outcomes.get(name)
        )
        sections.append(section)
        statuses.append(status)
    machine = describe_machine()
    cores = f"{machine['cores']} cores"
    if machine.get("usable_cores") not in (None, machine["cores"]):
        cores += f" ({machine['usable_cores']} usable)"
    summary_rows = [
        [
            f"[{status.get('title', status['name'])}](#{anchor(status.get('title', status['name']))})",
            status["headline"],
            status["date"],
        ]
        for status in statuses
    ]
    header = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/run_all.py`) from the figures of the latest run of each "
        "benchmark; do not edit by hand. Every benchmark compares against a baseline measured in the same "
        "run on the same machine and reports the ratio, because absolute times on a shared machine are "
        "noisy. Rerun one with `make bench BENCH=list` (or `python benchmarks/run_all.py list`), and see "
        "each script's docstring for what exactly it measures.",
        "",
        f"- Machine: {machine['cpu']}, {cores}, {machine.get('memory') or '?'} RAM",
        f"- OS: {machine['os']}; {machine['python']}",
        f"- Written: {datetime.now(UTC):%Y-%m-%d %H:%M UTC} on {platform.node() or 'this machine'}",
        "",
        markdown_table(["benchmark", "headline", "run"], summary_rows, numbers=False),
        "",
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(header + sections).rstrip() + "\n")
    print(f"wrote {output}")


def anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument(
        "--skip", action="append", default=[], metavar="NAME", help="leave this benchmark out"
    )
    parser.add_argument(
        "--json-dir",
        type=Path,
        default=DEFAULT_JSON_DIR,
        help=f"figures and logs (default {DEFAULT_JSON_DIR})",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"the document (default {DEFAULT_OUTPUT})"
    )
    parser.add_argument(
        "--pass",
        dest="passed",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help='extra arguments for one benchmark, e.g. --pass freshness="--changes 20"',
    )
    parser.add_argument("--render-only", action="store_true", help="only write the document from DIR's JSON")
    parser.add_argument("--no-docs", action="store_true", help="do not write the document")
    args = parser.parse_args(argv)

    benchmarks = discover()
    known = {short_name(path) for path in benchmarks}
    wanted = {normalise(name) for name in args.names}
    skipped = {normalise(name) for name in args.skip}
    extra: dict[str, list[str]] = {}
    for item in args.passed:
        name, separator, value = item.partition("=")
        if not separator:
            parser.error(f"--pass takes NAME=ARGS, not {item!r}")
        extra.setdefault(normalise(name), []).extend(shlex.split(value))
    unknown = (wanted | skipped | set(extra)) - known
    if unknown:
        parser.error(
            f"no such benchmark: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known)) or 'none'})"
        )
    if wanted:
        benchmarks = [path for path in benchmarks if short_name(path) in wanted]
    benchmarks = [path for path in benchmarks if short_name(path) not in skipped]
    args.json_dir.mkdir(parents=True, exist_ok=True)

    outcomes: dict[str, tuple[int, float]] = {}
    if not args.render_only:
        if not benchmarks:
            print(f"no benchmarks to run in {HERE} (expected bench_*.py files)")
        for path in benchmarks:
            outcomes[short_name(path)] = run_one(path, args.json_dir, extra.get(short_name(path), []))
        if len(outcomes) > 1:
            print("summary:")
            for name, (code, elapsed) in outcomes.items():
                print(f"  {name:<24} {'ok' if code == 0 else f'FAILED ({code})':<12} {elapsed:7.1f} s")
    if not args.no_docs:
        render(args.json_dir, args.output, outcomes)
    return 1 if any(code != 0 for code, _ in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
