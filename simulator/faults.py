"""When a /v1 request misbehaves: the fault configuration and its seeded draws.

What a fault then looks like on the wire (a 429 with its headers, a 5xx, Cloudflare's 502 page, a
cut-off body) is the server's business; this module only decides which fate a request meets.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class FaultConfig:
    """How often /v1 requests misbehave; every rate is a probability per request."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 2.0
    rate_cutoff: float = 0.0
    retry_after_seconds: float = 1.0
    seed: int = 0
    # Of the 5xx answers to writes (POST, DELETE), the share sent after the write took effect,
    # as happens when a gateway times out on a request that did reach the API: retrying such a
    # create makes a second batch, exactly as it would at OpenAI.
    rate_5xx_after_effect: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_5xx", "rate_slow", "rate_cutoff", "rate_5xx_after_effect"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if self.rate_429 + self.rate_5xx > 1.0:
            raise ValueError("rate_429 + rate_5xx must not exceed 1")
        for name in ("slow_seconds", "retry_after_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")

    @classmethod
    def from_dict(cls, data: Any) -> FaultConfig:
        if not isinstance(data, dict):
            raise ValueError("the fault configuration must be a JSON object")
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown fault setting {key!r}; known: {', '.join(known)}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            values[key] = int(value) if key == "seed" else float(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    error: int | None = None  # 429, 500, 502 or 503
    after_effect: bool = False
    slow: bool = False
    cutoff: bool = False


class Faults:
    """The current FaultConfig and its seeded random stream, shared by all handler threads."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self.config = config
        self._rng = random.Random(config.seed)

    def replace(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)

    def draw(self, method: str) -> tuple[FaultConfig, FaultDecision]:
        with self._lock:
            cfg, rng = self.config, self._rng
            # Always five draws, so the n-th request meets the same fate whatever came before.
            kind, which, after, slow, cut = (rng.random() for _ in range(5))
        error: int | None = None
        if kind < cfg.rate_429:
            error = 429
        elif kind < cfg.rate_429 + cfg.rate_5xx:
            error = 500 if which < 0.5 else 503 if which < 0.8 else 502
        return cfg, FaultDecision(
            error=error,
            after_effect=error not in (None, 429)
            and method in ("POST", "DELETE")
            and after < cfg.rate_5xx_after_effect,
            slow=slow < cfg.rate_slow,
            cutoff=error is None and cut < cfg.rate_cutoff,
        )
