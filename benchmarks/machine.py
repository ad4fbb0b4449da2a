"""What a benchmark says about where it ran: the machine, the software and the database, described the
same way in every figure of docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def _memory_total() -> str | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return None


def _filesystem_of(path: str) -> str | None:
    best: tuple[str, str] | None = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            mount, kind = parts[1], parts[2]
            inside = path == mount or path.startswith(mount.rstrip("/") + "/")
            if inside and (best is None or len(mount) > len(best[0])):
                best = (mount, kind)
    return f"{best[1]} on {best[0]}" if best else None


def describe_machine() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory": _memory_total(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def describe_software() -> dict[str, str | None]:
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {name: version(name) for name in ("django", "openai", "httpx", "httpx2")}


def describe_database() -> dict[str, Any]:
    from django.db import connection as db

    info: dict[str, Any] = {"vendor": db.vendor}
    if db.vendor == "sqlite":
        import sqlite3

        name = str(db.settings_dict["NAME"])
        with db.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            journal_mode = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(cursor.fetchone()[0])
        info.update(
            version=sqlite3.sqlite_version,
            name=name,
            filesystem=_filesystem_of(str(Path(name).resolve().parent)),
            journal_mode=journal_mode,
            synchronous=synchronous,
        )
    else:
        with db.cursor() as cursor:
            cursor.execute("SELECT version()")
            info["version"] = cursor.fetchone()[0]
        info["host"] = db.settings_dict.get("HOST") or "local socket"
        info["name"] = db.settings_dict.get("NAME")
    return info
