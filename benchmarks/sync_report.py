"""The sync benchmark's printed report, from the figures bench_sync.py gathers (the same dict it writes
with --json). Not a benchmark itself (run_all.py only runs bench_*.py)."""

from __future__ import annotations

from typing import Any

# Measurement keys, in the order the table shows them.
FULL_SYNC = "full_sync_empty"
SDK_LIST = "sdk_list"
OUR_LIST = "our_list"
RESYNC = "resync_unchanged"
REFRESH = "refresh_active"
LABELS = {
    FULL_SYNC: "full sync, empty DB (complete=True)",
    SDK_LIST: "SDK batches.list(limit=100)",
    OUR_LIST: "our iter_batches(limit=100), no DB",
    RESYNC: "second full sync, unchanged (complete=False)",
    REFRESH: "refresh_active, unchanged",
}


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 100 else f"{value:.1f} s"


def _mib(value: float | None, unit: int) -> str:
    return "n/a" if value is None else f"{value * unit / 2**20:.1f} MiB"


def _count(value: float) -> str:
    return f"{value:g}"


def print_report(data: dict[str, Any]) -> None:
    machine, software, database = data["machine"], data["software"], data["database"]
    print()
    print(
        f"Sync benchmark: {data['batches']:,} simulated batches, {data['repeat']} timed round(s) "
        f"after {data['warmup']} warm-up round(s), interleaved"
    )
    cores = f"{machine['cores']} cores"
    if machine["usable_cores"] not in (None, machine["cores"]):
        cores += f" ({machine['usable_cores']} usable)"
    print(f"machine:   {machine['cpu']}, {cores}, {machine['memory'] or '? GiB'} RAM, {machine['os']}")
    transport = f" (SDK transport: httpx2 {software['httpx2']})" if software.get("httpx2") else ""
    print(
        f"software:  {machine['python']}, Django {software['django']} (DEBUG off), openai "
        f"{software['openai']}, httpx {software['httpx']}{transport}"
    )
    if database["vendor"] == "sqlite":
        print(
            f"database:  SQLite {database['version']} ({database['journal_mode']}, synchronous="
            f"{database['synchronous']}), {database['name']} [{database['filesystem'] or '?'}]"
        )
    else:
        print(f"database:  {database['vendor']}, {database['version']}, at {database['host']}")
    print("simulator: a thread of this process, seed 1, clock frozen (speed 0)")
    print()
    header = (
        f"{'measurement':<46}{'median':>10}{'min':>10}{'us/batch':>10}{'API calls':>11}"
        f"{'SQL stmts':>11}{'peak RSS +':>12}{'heap peak':>12}"
    )
    print(header)
    print("-" * len(header))
    for row in data["measurements"].values():
        print(
            f"{row['label']:<46}{_seconds(row['median_s']):>10}{_seconds(row['min_s']):>10}"
            f"{row['per_batch_us']:>10.1f}{_count(row['api_calls']):>11}{_count(row['db_queries']):>11}"
            f"{_mib(row['rss_growth_kib'], 1024):>12}{_mib(row['heap_peak_bytes'], 1):>12}"
        )
    print()
    print(
        "times: median and min over the timed rounds; peak RSS +: growth of the peak RSS over the RSS "
        "before the\noperation, and heap peak: tracemalloc; both measured once, each in a fresh process."
    )
    full_sync = data["measurements"][FULL_SYNC]
    rows = full_sync["runs"][-1].get("rows")
    if rows:
        print(
            f"a full sync writes {rows['batches']:,} batches, {rows['status_changes']:,} status changes "
            f"and {rows['snapshots']:,} progress snapshots"
        )
    headline = data["headline"]
    listing = data["measurements"][OUR_LIST]["median_s"]
    print(
        f"our listing alone is {headline['listing_share_of_sync']:.0%} of the full sync; the other "
        f"{_seconds(full_sync['median_s'] - listing)} is mapping and database writes"
    )
    verdict = "met" if headline["met"] else "NOT met"
    per_round = ", ".join(f"{ratio:.2f}" for ratio in headline["ratio_per_round"])
    print(
        f"\nHEADLINE  full sync / SDK list = {headline['ratio']:.2f} (medians; "
        f"{headline['ratio_of_mins']:.2f} on minimums; by round {per_round}); "
        f"goal <= {headline['goal']}: {verdict}"
    )
