"""The report of bench_year.py: its table side by side (before and after housekeeping, per database),
the headline against the goals, and the query plans as a document. Not a benchmark itself."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchlib import describe_machine, now_iso

GOAL_KB = 25.0
GOAL_LIST = 0.5
GOAL_DETAIL = 1.0  # x the admin changelist (proposed)
GOAL_POLL = 0.1  # x the admin changelist (proposed; bench_list measures 0.05 at 100,000 batches)
GOAL_SPEND_MS = 300
GOAL_DAY_SECONDS = 60.0
GOAL_LOCK_WAIT = 1.0
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def generated_batches(runs: list[dict[str, Any]]) -> int:
    return min(run["generated"]["batches"] for run in runs)


def figures(args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    import queryplans

    runs = list(results.values())
    columns = ["measurement"]
    for run in runs:
        name = NAMES[run["vendor"]]
        columns += [f"{name} before", f"{name} after"]
    columns += ["goal", "met"]
    rows: list[list[Any]] = []
    verdicts: list[bool] = []

    def add(label: str, cells: list[str], goal: str, met: bool | None) -> None:
        rows.append([label, *cells, goal, "-" if met is None else ("yes" if met else "**no**")])
        if met is not None:
            verdicts.append(met)

    def kb(run: dict[str, Any], stage: str) -> float:
        if stage == "after" and run["vendor"] == "postgresql":
            return run["after"]["kb_per_finished"]  # compacted: see the docstring
        return run[stage]["kb_per_finished"]

    add(
        "database per finished batch",
        [f"{kb(r, s):.1f} KB" for r in runs for s in ("before", "after")],
        f"<= {GOAL_KB:.0f} KB after",
        all(kb(r, "after") <= GOAL_KB for r in runs),
    )
    pg = [r for r in runs if r["vendor"] == "postgresql"]
    if pg:
        on_disk = pg[0]["after_vacuum_bytes"] / max(pg[0]["after"]["finished"], 1) / 1024
        add(
            "PostgreSQL on disk after housekeeping + VACUUM (not compacted)",
            ["" for _ in runs for _ in (0, 1)],
            f"{on_disk:.1f} KB (reused by later rows)",
            None,
        )
    add("progress snapshots", [f"{r[s]['snapshots']:,}" for r in runs for s in ("before", "after")], "", None)

    def ratio(run: dict[str, Any], stage: str, key: str) -> float:
        pages = run[stage]["pages"]
        return pages[key]["median_s"] / pages["admin"]["median_s"]

    for key, label, goal in (
        ("list", "list page / admin changelist", GOAL_LIST),
        ("list_filtered", "list ?status=completed&sort=progress / admin", GOAL_LIST),
        ("detail_old", "detail of an old batch / admin", GOAL_DETAIL),
        ("detail_running", "detail of a running batch / admin", GOAL_DETAIL),
        ("row_poll", "row poll / admin", GOAL_POLL),
    ):
        cells = [
            f"{ratio(r, s, key):.2f}x ({r[s]['pages'][key]['median_s'] * 1000:.1f} ms)"
            for r in runs
            for s in ("before", "after")
        ]
        add(
            label,
            cells,
            f"<= {goal}x",
            all(ratio(r, s, key) <= goal for r in runs for s in ("before", "after")),
        )
    add(
        "admin changelist (baseline)",
        [f"{r[s]['pages']['admin']['median_s'] * 1000:.1f} ms" for r in runs for s in ("before", "after")],
        "",
        None,
    )
    add(
        "spend page (this month, by connection)",
        [f"{r[s]['pages']['spend']['median_s'] * 1000:.1f} ms" for r in runs for s in ("before", "after")],
        f"< {GOAL_SPEND_MS} ms (docs/benchmarks.md: spend)",
        all(
            r[s]["pages"]["spend"]["median_s"] * 1000 < GOAL_SPEND_MS
            for r in runs
            for s in ("before", "after")
        ),
    )
    year = [f"{r['housekeeping_year']['seconds']:.1f} s" for r in runs]
    add("housekeeping, first run over the year", [c for y in year for c in (y, "")], "", None)
    day = [r["housekeeping_day"]["seconds"] for r in runs]
    add(
        "housekeeping of a day's work",
        [c for d in day for c in ("", f"{d:.2f} s")],
        f"< {GOAL_DAY_SECONDS:.0f} s",
        all(d < GOAL_DAY_SECONDS for d in day),
    )
    sqlite = [r for r in runs if r["vendor"] == "sqlite"]
    if sqlite:
        waits = [sqlite[0][k]["lock_waits"] for k in ("housekeeping_year", "housekeeping_day")]
        worst = max(w["max_s"] for w in waits)
        cells = [
            f"{waits[0]['max_s'] * 1000:.0f} ms (year run, {waits[0]['n']} writes)",
            f"{waits[1]['max_s'] * 1000:.0f} ms (day run, {waits[1]['n']} writes)",
        ]
        add(
            "SQLite: longest write-lock wait of a sync during housekeeping",
            cells + ["" for _ in runs[1:] for _ in (0, 1)],
            f"< {GOAL_LOCK_WAIT:.0f} s",
            worst < GOAL_LOCK_WAIT,
        )
    plans = [p for r in runs for p in r["after"]["plans"]]
    bad = [f"{NAMES[r['vendor']]}: {p['name']}" for r in runs for p in r["after"]["plans"] if not p["ok"]]
    # The plans of tables a few hundred rows long are not those of a year's: only a big run is judged.
    judged = generated_batches(runs) >= queryplans.SMALL
    add(
        "query plans not using the index meant for them" + ("" if judged else " (small run: not judged)"),
        [
            f"{sum(not p['ok'] for p in r[s]['plans'])} of {len(r[s]['plans'])}"
            for r in runs
            for s in ("before", "after")
        ],
        "0",
        not bad if judged else None,
    )
    met = all(verdicts)
    headline = {
        "met": met,
        "text": (
            "per finished batch after housekeeping "
            + ", ".join(f"{NAMES[r['vendor']]} {kb(r, 'after'):.1f} KB" for r in runs)
            + f" (goal <= {GOAL_KB:.0f}); list / admin "
            + ", ".join(f"{ratio(r, 'after', 'list'):.2f}" for r in runs)
            + f" (goal <= {GOAL_LIST}); a day's housekeeping "
            + ", ".join(f"{d:.1f} s" for d in day)
            + (f"; longest lock wait {worst * 1000:.0f} ms" if sqlite else "")
            + (f"; query plans not as meant: {len(bad)}" if judged else "")
            + f": {'met' if met else 'NOT met'}"
        ),
    }
    generated = runs[0]["generated"]
    written = ", ".join(f"{run['generated']['seconds']:.0f} s" for run in runs)
    notes = [
        f"{args.days} days x {args.per_day} batches over 3 connections: {generated['batches']:,} batches "
        f"({generated['finished']:,} finished, {generated['running']:,} still going), "
        f"{generated['snapshots']:,} progress snapshots, {generated['status_changes']:,} status changes, "
        f"{generated['deliveries']:,} alert deliveries, {generated['receipts']:,} webhook receipts, "
        f"{generated['audit_events']:,} audit events, {generated['sessions']:,} sessions "
        f"(benchmarks/yeardata.py; written in {written}).",
        "pages: Django test Client in-process, DEBUG off, cache on a private Redis, as bench_list.py; "
        f"medians of {args.rounds} rounds after {args.warmup} warm-up rounds. Detail and poll goals are "
        "proposed by this benchmark (docs/benchmarks.md had none).",
        "PostgreSQL after: compacted (VACUUM FULL), the size hourly housekeeping holds the tables at since "
        "each hour's freed space takes the next hour's rows; its uncompacted on-disk size is listed too.",
        "housekeeping of a day: one more day of data, then housekeeping a day later. Lock waits: a probe "
        "process writing as the sync does every 50 ms during each housekeeping run.",
        *(
            ["the databases ran at the same time (--parallel), each sharing the 2 cores with the other"]
            if getattr(args, "parallel", False)
            else []
        ),
        f"query plans: {len(plans)} EXPLAINs after housekeeping, written to docs/query-plans.md"
        + (f"; not as meant: {', '.join(bad)}" if bad else "; each uses the index meant for it"),
    ]
    return {
        "benchmark": "year",
        "title": "One year of a busy team: size per batch and page times, before and after housekeeping",
        "date": now_iso(),
        "days": args.days,
        "per_day": args.per_day,
        "machine": describe_machine(),
        "runs": {k: {kk: vv for kk, vv in v.items() if kk != "plans_markdown"} for k, v in results.items()},
        "table": {"columns": columns, "rows": rows},
        "notes": notes,
        "headline": headline,
    }


def write_plans(path: Path, results: dict[str, Any], args: argparse.Namespace) -> None:
    text = [
        "# Query plans at a year's size",
        "",
        f"Written by `benchmarks/bench_year.py` ({args.days} days x {args.per_day} batches a day) after "
        "housekeeping, on each database: every sort and filter of the list, the detail page's history, the "
        "row poll and housekeeping's own reads and deletes (benchmarks/queryplans.py). A plan that reads a "
        "whole large table is flagged unless the query must (and is cached or rare).",
        "",
        *(r["plans_markdown"] for r in results.values()),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text).rstrip() + "\n")
    print(f"plans written to {path}")
