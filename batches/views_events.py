"""GET /live/events/: the push doorbell's stream (batches.live_events), served by the events server.

An async view, so that one ASGI process (deploy/gunicorn_events.conf.py) holds thousands of idle
streams. Under WSGI (runserver, the gthread web workers) a stream would pin a thread for minutes, so
there it answers 404 and pages simply poll on their timer.

Who may listen: the session is read when the stream opens, and a stream ends after
LIVE_EVENTS_STREAM_SECONDS, so that a signed-out or deactivated user stops getting events at the next
reconnect. Anyone signed out gets a plain 403, never a stream nor the sign-in page.
"""

from __future__ import annotations

import random

from asgiref.sync import sync_to_async
from django import db
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.http import require_GET

from batches import live, live_events
from batches.models import Connection


def visible_names(names: list[str]) -> list[str]:
    """Of `names`, those a signed-in user may see. Every signed-in user sees every connection (roles
    narrow what they may do, not what they see: batches.views), so: the connections that exist."""
    pks = [int(name) for name in names if name.isdigit()]
    existing = {str(pk) for pk in Connection.objects.filter(pk__in=pks).values_list("pk", flat=True)}
    return [name for name in names if name == live.EVERY_CONNECTION or name in existing]


def _visible_names_then_close(names: list[str]) -> list[str]:
    """visible_names, and then this request's database connection is closed: under ASGI each request
    has its own, and a stream open for minutes would otherwise hold one (a PostgreSQL connection per
    open page). Nothing after this reads the database."""
    try:
        return visible_names(names)
    finally:
        db.connections.close_all()


@login_not_required  # checked here: a 403, never the sign-in page, for a stream's reconnect
@require_GET
async def live_events_view(request: HttpRequest) -> HttpResponseBase:
    if not isinstance(request, ASGIRequest):
        message = "Live events are served by the events server."
        return HttpResponse(message, status=404, content_type="text/plain")
    user = await request.auser()
    if not (user.is_authenticated and user.is_active):
        return _allow_origin(request, HttpResponse("Sign in first.", status=403, content_type="text/plain"))
    watched = await sync_to_async(_visible_names_then_close)(live.watched_names(request.GET.get("w", "")))
    if not watched:
        return _allow_origin(request, HttpResponse(status=204))  # nothing to tell: EventSource stops
    hub = live_events.hub_for_this_loop(settings.REDIS_URL)
    seconds = settings.LIVE_EVENTS_STREAM_SECONDS * random.uniform(0.8, 1.0)  # spread the reconnects
    response = StreamingHttpResponse(
        live_events.stream(hub, watched, seconds=seconds, heartbeat=settings.LIVE_EVENTS_HEARTBEAT_SECONDS),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx passes each event on at once
    return _allow_origin(request, response)


def _allow_origin(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """CORS for pages on another origin named in LIVE_EVENTS_ALLOWED_ORIGINS (`make run`: runserver on
    one port, the events server on another); behind nginx pages and events share one origin."""
    origin = request.headers.get("Origin", "")
    if origin and origin in settings.LIVE_EVENTS_ALLOWED_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Credentials"] = "true"
    response["Vary"] = "Origin, Cookie"
    return response
