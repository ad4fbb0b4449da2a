"""The memory one process uses, for the probes that run a single operation in a child process of its own
and report what it cost: current and peak RSS from /proc, the peak reset first where Linux allows it."""

from __future__ import annotations

import contextlib
import resource
import sys
from pathlib import Path


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
