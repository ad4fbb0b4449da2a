"""Managing API connections: admins only."""

from __future__ import annotations

import re

from django.contrib import messages
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import audit
from accounts.models import AuditEvent
from accounts.roles import ADMIN, role_required
from batches import secrets
from batches.api_client import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    MalformedResponseError,
)
from batches.connections import ConnectionNotConfigured, client_for
from batches.forms import ConnectionForm
from batches.models import Connection


@require_http_methods(["GET"])
@role_required(ADMIN)
def connection_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "batches/connections/list.html", {"connections": Connection.objects.order_by("name")}
    )


@require_http_methods(["GET", "POST"])
@role_required(ADMIN)
def connection_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk) if pk is not None else Connection()
    form = ConnectionForm(request.POST or None, instance=connection)
    if request.method == "POST" and form.is_valid():
        changed = sorted(set(form.changed_data) - {"api_key"})
        connection = form.save(commit=False)
        if not connection.from_environment:
            try:
                _apply_key(connection, form)
            except secrets.EncryptionNotConfigured as error:
                form.add_error("api_key", str(error))
                return render(
                    request, "batches/connections/form.html", {"form": form, "connection": connection}
                )
        connection.save()
        action = AuditEvent.Action.CONNECTION_UPDATE if pk else AuditEvent.Action.CONNECTION_CREATE
        key_note = " (key replaced)" if form.cleaned_data.get("api_key") else ""
        audit.record(
            action,
            actor=request.user,
            target=connection.name,
            request=request,
            detail=f"changed: {', '.join(changed) or 'nothing'}{key_note}",
        )
        messages.success(request, f"Connection {connection.name} saved.")
        return redirect("batches:connections")
    return render(request, "batches/connections/form.html", {"form": form, "connection": connection})


def _apply_key(connection: Connection, form: ConnectionForm) -> None:
    storage = form.cleaned_data.get("key_storage")
    api_key = form.cleaned_data.get("api_key", "")
    if storage == "env":
        connection.api_key_encrypted = ""
        connection.api_key_last4 = ""
    elif api_key:
        connection.api_key_encrypted = secrets.encrypt(api_key)
        connection.api_key_last4 = secrets.last4(api_key)
        connection.api_key_env = ""


@require_POST
@role_required(ADMIN)
def connection_delete(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk)
    if connection.from_environment:
        messages.error(request, "The connection configured by the environment cannot be deleted; disable it.")
        return redirect("batches:connections")
    try:
        connection.delete()
    except ProtectedError:
        messages.error(
            request,
            f"{connection.name} still has batches in the dashboard; "
            "disable it instead to keep their history.",
        )
        return redirect("batches:connections")
    audit.record(
        AuditEvent.Action.CONNECTION_DELETE, actor=request.user, target=connection.name, request=request
    )
    messages.success(request, f"Connection {connection.name} deleted.")
    return redirect("batches:connections")


@require_POST
@role_required(ADMIN)
def connection_test(request: HttpRequest, pk: int) -> HttpResponse:
    """List one batch: proves the URL, the key and the headers together."""
    connection = get_object_or_404(Connection, pk=pk)
    try:
        with client_for(connection) as client:
            page = next(client.list_batch_pages(limit=1), None)
        ok = True
        message = f"{connection.name}: the API answered" + (
            f"; newest batch {page.data[0].id}." if page and page.data else "; no batches yet."
        )
    except ConnectionNotConfigured as error:
        ok, message = False, str(error)
    except APIError as error:
        ok, message = False, f"{connection.name}: {_failure(error)}"
    audit.record(
        AuditEvent.Action.CONNECTION_TEST,
        actor=request.user,
        target=connection.name,
        succeeded=ok,
        detail=message,
        request=request,
    )
    (messages.success if ok else messages.error)(request, message)
    if request.htmx:
        return render(request, "batches/connections/list.html#messages", {})
    return redirect("batches:connections")


# Transport errors whose text is about the connection itself (refused, unresolved, TLS), not bytes the
# other side sent; a protocol error's text can quote what answered (h11 quotes a bad status line).
_CONNECT_FAILURE = re.compile(r"Could not reach the API \((ConnectError|ConnectTimeout)\b")


def _failure(error: APIError) -> str:
    """What "Test" says about a failure: the API's own error message when an API error body carried
    one, otherwise only the status or the kind of failure. Never the bytes of whatever answered: the
    base URL may point at any server, and its page is not the admin's to read through ours."""
    status = f"HTTP {error.status_code}" if error.status_code is not None else None
    if isinstance(error, APIStatusError):
        if error.from_error_body:
            return f"the API answered with an error: {error}"
        return f"the server answered {status} without an API error body; check the base URL."
    if isinstance(error, MalformedResponseError):
        answered = f"answered {status}" if status else "answered"
        return f"the server {answered}, but not as the Batch API does; check the base URL."
    if isinstance(error, APITimeoutError):
        return "the API did not answer in time."
    if isinstance(error, APIConnectionError) and _CONNECT_FAILURE.match(error.message):
        return str(error)
    return f"could not talk to the API ({type(error).__name__}); check the base URL."
