"""The OpenAI webhook endpoint, /metrics, the notification channels page and the admin failures page."""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from kombu.exceptions import OperationalError

from accounts.requests import AuthenticatedHttpRequest
from accounts.roles import ADMIN, can_admin, role_required
from alerts import addresses, exposition, selectors, services, signing, tasks
from alerts.forms import ChannelForm
from alerts.models import Channel, SecretUnavailable

logger = logging.getLogger(__name__)

# OpenAI's webhook events that mean a batch reached an outcome.
BATCH_EVENT_TYPES = ("batch.completed", "batch.failed", "batch.expired", "batch.cancelled")


# --- OpenAI webhook ingest ---------------------------------------------------------------------


@csrf_exempt
@login_not_required
@require_POST
def openai_webhook(request: HttpRequest, ref: str) -> HttpResponse:
    """Verify, deduplicate, and queue a refresh of the batch. The answer is quick and says nothing
    about why a delivery was refused; polling remains the fallback for anything missed here."""
    if not settings.OPENAI_WEBHOOK_SECRET:
        raise Http404("webhooks are not configured")
    try:
        webhook_id = signing.verify(settings.OPENAI_WEBHOOK_SECRET, request.headers, request.body)
    except signing.InvalidSignature as error:
        logger.warning("Refused an OpenAI webhook delivery: %s", error)
        return HttpResponseBadRequest("invalid webhook", content_type="text/plain")
    try:
        event = json.loads(request.body)
        event_type = str(event.get("type", ""))
        batch_id = str((event.get("data") or {}).get("id", "")) if event_type in BATCH_EVENT_TYPES else ""
    except (ValueError, AttributeError):
        return HttpResponseBadRequest("invalid webhook", content_type="text/plain")
    # Signed by OpenAI but for no connection of ours: a 404 makes the dashboard list the failed deliveries.
    connection = selectors.find_connection(ref)
    if connection is None:
        raise Http404("no such connection")
    if not services.record_webhook(webhook_id, event_type, connection, batch_id, timezone.now()):
        return HttpResponse("duplicate", content_type="text/plain")
    if batch_id:
        try:
            # Queued, not done here: OpenAI wants an answer within seconds, while an API call may take
            # its full timeout and retries, and the worker already knows the connection's backoff.
            tasks.refresh_batch_now.delay(connection.pk, batch_id)
        except OperationalError:
            # No broker: let OpenAI deliver again later rather than drop the event as done.
            services.forget_webhook(webhook_id)
            logger.exception("Could not queue the refresh of batch %s", batch_id)
            return HttpResponse("try again", status=503, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")


# --- /metrics ----------------------------------------------------------------------------------


@login_not_required
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("metrics are not configured")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = HttpResponse("unauthorized", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition.render(), content_type=exposition.CONTENT_TYPE)


# --- channels ----------------------------------------------------------------------------------


def _channel_for_user(request: AuthenticatedHttpRequest, pk: int) -> Channel:
    return get_object_or_404(selectors.channels_for(request.user, admin=can_admin(request.user)), pk=pk)


@require_http_methods(["GET", "POST"])
def channel_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Your notification channels; admins also manage the team's (which belong to no user)."""
    admin = can_admin(request.user)
    form = ChannelForm(request.POST or None, allow_env=admin)
    if request.method == "POST" and form.is_valid():
        channel = form.save(commit=False)
        channel.user = None if admin and request.POST.get("team") else request.user
        try:
            refused = addresses.refusal(channel)
        except SecretUnavailable:
            # Only admins name variables, and the web process may lack one the workers have: the
            # check runs again before every send, where the workers read it.
            refused = None
        if refused:
            form.add_error("url", f"Refused: {refused}.")
        else:
            channel.save()
            messages.success(request, f"Channel {channel} added.")
            return redirect("alerts:channels")
    channels = list(selectors.channels_for(request.user, admin=admin))
    return render(request, "alerts/channels.html", {"form": form, "channels": channels, "is_admin": admin})


@require_POST
def channel_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    channel = _channel_for_user(request, pk)
    channel.delete()
    messages.success(request, f"Channel {channel} deleted.")
    return redirect("alerts:channels")


@require_POST
def channel_toggle(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    channel = _channel_for_user(request, pk)
    Channel.objects.filter(pk=channel.pk).update(enabled=not channel.enabled)
    return redirect("alerts:channels")


# --- failures (admins) -------------------------------------------------------------------------


@require_GET
@role_required(ADMIN)
def failures(request: HttpRequest) -> HttpResponse:
    deliveries = list(selectors.deliveries_needing_attention()[:200])
    return render(request, "alerts/failures.html", {"deliveries": deliveries})


@require_POST
@role_required(ADMIN)
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    if services.retry_delivery(pk):
        messages.success(request, "The notification will be sent again within a few seconds.")
    else:
        messages.error(request, "That notification is no longer waiting for a retry.")
    return redirect("alerts:failures")
