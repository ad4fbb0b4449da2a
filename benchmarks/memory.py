"""The memory one process uses, for the probes that run a single operation in a child process of its own
and report what it cost: current and peak RSS from /proc, the peak reset first where Linux allows it."""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")


def status_kib(name: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), None where there is no /proc."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return None


def reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets this process's peak RSS (VmHWM) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def max_rss_kib() -> int:
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if sys.platform == "darwin" else value  # bytes on macOS, KiB elsewhere


def rss_growth(work: Callable[[], _T]) -> tuple[_T, dict[str, Any]]:
    """Runs `work` once; returns what it returned, and its figures: seconds, how far the peak RSS grew
    over the RSS before (rss_growth_kib) and how that was measured (method)."""
    if reset_peak_rss() and (before := status_kib("VmRSS")) is not None:
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
        # VmHWM is this process's own peak; ru_maxrss may still hold the parent's size from before
        # exec, which the reset does not clear.
        growth, method = (status_kib("VmHWM") or before) - before, "VmHWM after reset"
    else:
        # ru_maxrss cannot be reset here: its growth counts only what exceeds earlier peaks.
        before = max_rss_kib()
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
        growth, method = max_rss_kib() - before, "ru_maxrss growth"
    return result, {"seconds": seconds, "rss_growth_kib": max(0, growth), "method": method}
