from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from batches import selectors, services
from batches.models import Batch


def _get_batch_for_user(request: HttpRequest, pk: int) -> Batch:
    # Every signed-in user sees every batch for now; roles narrow what they may do (see issue 6).
    return get_object_or_404(Batch.objects.select_related("connection"), pk=pk)


@require_GET
@login_required
def batch_list(request: HttpRequest) -> HttpResponse:
    filters = selectors.BatchFilters.from_query(request.GET)
    page = selectors.batch_page(filters, request.GET.get("cursor"))
    counts = selectors.status_counts(filters)
    context = {
        "filters": filters,
        "page": page,
        "counts": counts,
        "choices": selectors.filter_choices(),
        "connections": selectors.sync_health(),
        "query_without_cursor": _query_without(request, "cursor"),
    }
    template = "batches/list.html"
    if request.htmx and request.htmx.target == "batch-table":
        template += "#table"
    elif request.htmx and request.htmx.target == "summary":
        template += "#summary"
    return render(request, template, context)


@require_GET
@login_required
def batch_row(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _get_batch_for_user(request, pk)
    return render(request, "batches/list.html#row", {"batch": batch})


@require_GET
@login_required
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _get_batch_for_user(request, pk)
    context = {
        "batch": batch,
        "changes": list(batch.status_changes.all()),
        "connection": batch.connection,
    }
    template = "batches/detail.html#live" if request.htmx else "batches/detail.html"
    return render(request, template, context)


@require_POST
@login_required
def batch_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _get_batch_for_user(request, pk)
    outcome = services.cancel_batch(batch)
    (messages.success if outcome.ok else messages.error)(request, outcome.message)
    if request.htmx:
        batch.refresh_from_db()
        response = render(request, "batches/detail.html#live", {"batch": batch})
        return response
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        return redirect(next_url)
    return redirect("batches:detail", pk=batch.pk)


def _query_without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()
