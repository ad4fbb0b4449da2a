"""Strict parsing of settings from environment variables.

A typo in a deployment's environment should stop the process at start-up with a message that names
the variable and the value it expected, rather than silently falling back to a default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit


class ImproperlyConfiguredEnv(Exception):
    """An environment variable holds a value that cannot be used."""


_N = TypeVar("_N", int, float)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfiguredEnv(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    return _env_number(name, default, int, "a whole number", minimum)


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    return _env_number(name, default, float, "a number", minimum)


def _env_number(name: str, default: _N, parse: Callable[[str], _N], what: str, minimum: _N | None) -> _N:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw.strip())
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name} must be {what}; got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfiguredEnv(f"{name} must be at least {minimum}; got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    """A URL whose scheme is one of `schemes` and which names a host (or, for sqlite, a path)."""
    raw = os.environ.get(name)
    value = default if raw is None or raw.strip() == "" else raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ImproperlyConfiguredEnv(
            f"{name} must start with one of {', '.join(s + '://' for s in schemes)}; "
            f"got a value starting with {parts.scheme + '://' if parts.scheme else 'no scheme'}"
        )
    if parts.scheme != "sqlite" and not parts.hostname:
        # Print only the scheme: the rest of a database or broker URL may carry a password.
        raise ImproperlyConfiguredEnv(f"{name} must name a host after {parts.scheme}://")
    return value


def env_networks(name: str, default: list[str]) -> list[str]:
    """Comma-separated IP addresses or networks (127.0.0.1, 10.0.0.0/8, ::1), normalised."""
    import ipaddress

    networks = []
    for item in env_list(name, default):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ImproperlyConfiguredEnv(
                f"{name} must list IP addresses or networks (such as 127.0.0.1 or 10.0.0.0/8); got {item!r}"
            ) from None
    return networks
