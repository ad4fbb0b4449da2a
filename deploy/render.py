#!/usr/bin/env python3
"""Fills in a deploy/ template's ${DASHBOARD_...} placeholders from the environment and prints it.

Only placeholders of that exact shape are replaced, so nginx's own $host or $remote_addr are left as
they are (envsubst without a variable list would empty them). A placeholder with no value and no
default below stops the rendering with its name, rather than writing a broken configuration.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DEFAULTS = {
    "DASHBOARD_UPSTREAM": "127.0.0.1:8000",
    "DASHBOARD_EVENTS_UPSTREAM": "127.0.0.1:8001",
    "DASHBOARD_HTTP_LISTEN": "80",
    "DASHBOARD_HTTPS_LISTEN": "443",
    "DASHBOARD_STATIC_ROOT": "/srv/batch-dashboard/var/static",
}
PLACEHOLDER = re.compile(r"\$\{(DASHBOARD_[A-Z0-9_]+)\}")


def render(text: str, values: dict[str, str]) -> str:
    missing = sorted({name for name in PLACEHOLDER.findall(text) if not values.get(name)})
    if missing:
        raise SystemExit(f"render.py: set {', '.join(missing)} in the environment")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 deploy/render.py TEMPLATE > OUTPUT", file=sys.stderr)
        return 2
    values = {**DEFAULTS, **{k: v for k, v in os.environ.items() if k.startswith("DASHBOARD_") and v}}
    sys.stdout.write(render(Path(argv[1]).read_text(), values))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
