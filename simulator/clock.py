"""Simulated time, and where a simulated instant shows on the wall clock."""

from __future__ import annotations

import bisect
import math
import threading
import time


class SimClock:
    """Simulated time: start + wall time elapsed x speed + whatever tests advanced it by."""

    def __init__(self, start: float | None = None, speed: float = 1.0) -> None:
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"speed must be a finite number >= 0, got {speed!r}")
        self._start = time.time() if start is None else float(start)
        self._wall0 = time.monotonic()
        self._speed = speed
        self._advanced = 0.0
        self._last = self._start
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        with self._lock:
            value = self._start + (time.monotonic() - self._wall0) * self._speed + self._advanced
            # Never report an earlier time than before, whatever the platform clock does.
            self._last = max(self._last, value)
            return self._last

    def advance(self, seconds: float) -> float:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"can only move the clock forwards, got {seconds!r}")
        with self._lock:
            self._advanced += seconds
        return self.now()


class WallClockMap:
    """Where a simulated instant appears on the wall clock, for `wall_clock_timestamps`.

    Piecewise linear and non-decreasing. Each piece is (sim, wall, speed): from simulated instant
    `sim` on, t shows as `wall + (t - sim) / speed` (speed 0, a frozen clock, counts as 1), rounded
    to the nearest second. A new world has one piece, (origin, origin, speed), so every timestamp
    shows as `origin + (t - origin) / speed`, the seeded past included (the first piece extends
    backwards). A world loaded from a state file adds a piece where its clock resumes, pinned to
    the wall time of the restart, so what was shown before keeps its value and what happens from
    then on is again consistent with the real clock.
    """

    def __init__(self, pieces: list[tuple[float, float, float]]) -> None:
        if not pieces:
            raise ValueError("a wall clock map needs at least one piece")
        self.pieces: list[tuple[float, float, float]] = []
        self._starts: list[float] = []
        for sim, wall, speed in pieces:
            self.add(sim, wall, speed)

    def add(self, sim: float, wall: float, speed: float) -> None:
        if self._starts and sim < self._starts[-1]:
            raise ValueError("wall clock map pieces must start in order")
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"speed must be a finite number >= 0, got {speed!r}")
        self.pieces.append((float(sim), float(wall), float(speed)))
        self._starts.append(float(sim))

    def resume(self, sim: float, wall: float, speed: float) -> None:
        """A new piece from `sim` on, shown from `wall` on, never earlier than what came before."""
        self.add(sim, max(wall, self.exact(sim)), speed)

    def exact(self, t: float) -> float:
        i = max(0, bisect.bisect_right(self._starts, t) - 1)
        sim, wall, speed = self.pieces[i]
        return wall + (t - sim) / (speed if speed > 0 else 1.0)

    def __call__(self, t: float) -> int:
        # Half up rather than Python's half to even: plainly monotonic.
        return math.floor(self.exact(t) + 0.5)

    def to_list(self) -> list[list[float]]:
        return [list(piece) for piece in self.pieces]
