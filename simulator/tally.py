"""How many requests each /v1 route received, by method, path and answered status: what tests and
benchmarks read (GET /_sim/requests) to prove that a client sent something exactly once.

Counts, not a log: memory grows with the distinct paths asked for, never with the number of requests.
Faulted answers are counted under their own status (a 429 is not a cancel the API accepted).
"""

from __future__ import annotations

import threading
from collections import Counter


class RequestTally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._counts[(method, path, status)] += 1

    def rows(self, path_prefix: str = "") -> list[dict[str, object]]:
        with self._lock:
            items = sorted(self._counts.items())
        return [
            {"method": method, "path": path, "status": status, "count": count}
            for (method, path, status), count in items
            if path.startswith(path_prefix)
        ]

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
