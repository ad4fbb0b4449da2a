"""Managing API connections: admins only."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.roles import ADMIN, role_required
from batches import secrets, services
from batches.forms import ConnectionForm
from batches.models import Connection
from dashboard.htmx import HtmxHttpRequest


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
        try:
            services.save_connection(
                connection,
                changed=changed,
                key_storage=form.cleaned_data.get("key_storage"),
                api_key=form.cleaned_data.get("api_key", ""),
                user=request.user,
                request=request,
            )
        except secrets.EncryptionNotConfigured as error:
            form.add_error("api_key", str(error))
            return render(request, "batches/connections/form.html", {"form": form, "connection": connection})
        messages.success(request, f"Connection {connection.name} saved.")
        return redirect("batches:connections")
    return render(request, "batches/connections/form.html", {"form": form, "connection": connection})


@require_POST
@role_required(ADMIN)
def connection_delete(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk)
    outcome = services.delete_connection(connection, user=request.user, request=request)
    (messages.success if outcome.ok else messages.error)(request, outcome.message)
    return redirect("batches:connections")


@require_POST
@role_required(ADMIN)
def connection_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk)
    outcome = services.check_connection(connection, user=request.user, request=request)
    (messages.success if outcome.ok else messages.error)(request, outcome.message)
    if request.htmx:
        return render(request, "batches/connections/list.html#messages", {})
    return redirect("batches:connections")
