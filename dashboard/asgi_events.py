"""The events server's application (deploy/gunicorn_events.conf.py: `gunicorn dashboard.asgi_events`).

Django's own ASGI handler gives every request a thread of its own for the request's synchronous work
(middleware, the session and user lookups) and keeps it until the response ends. A push stream
(batches/views_events.py) lasts minutes, so 2,000 open pages held 2,000 idle threads, about 140 KiB
of memory each (measured by benchmarks/bench_event_streams.py). Here that work runs on asgiref's one
shared thread instead: it is a few milliseconds per connect, and nothing else in this process is
synchronous. Each request still has its own database connection (closed before its stream starts).
"""

from __future__ import annotations

import os
from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")


class SharedThreadASGIHandler(ASGIHandler):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)


django.setup(set_prefix=False)
application = SharedThreadASGIHandler()
