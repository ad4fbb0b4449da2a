from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from accounts.polls import PollRequest, poll_login_required
from accounts.roles import OPERATOR, can_admin, can_operate, role_required
from batches import (
    live_rows,
    live_selectors,
    rows,
    selectors,
    selectors_bulk,
    selectors_history,
    services,
    views_live,
)
from batches.models import Batch
from dashboard.htmx import HtmxHttpRequest
from spend import money
from spend import selectors as spend_selectors


def _get_batch_for_user(request: HttpRequest, pk: int) -> Batch:
    # Every signed-in user sees every batch; roles narrow what they may do.
    return get_object_or_404(Batch.objects.select_related("connection"), pk=pk)


def _row_context(request: HttpRequest) -> dict:
    return {
        "now": timezone.now(),
        "stalled_after": timedelta(minutes=settings.STALLED_AFTER_MINUTES),
    }


def _row(request: HttpRequest, batch: Batch, context: dict) -> rows.Row:
    return rows.row(
        batch,
        now=context["now"],
        stalled_after=context["stalled_after"],
        can_operate=can_operate(request.user),
    )


@require_GET
def batch_list(request: HtmxHttpRequest) -> HttpResponse:
    """The page, or one of its fragments: the table (filters, paging) or the summary (its poll)."""
    filters = selectors.BatchFilters.from_query(request.GET)
    target = request.htmx.target if request.htmx else None
    context: dict = {
        **_row_context(request),
        "filters": filters,
        "query_without_cursor": _query_without(request, "cursor"),
        "query_without_status": _query_without(request, "cursor", "status"),
        "query_without_sort": _query_without(request, "cursor", "sort"),
    }
    connections = selectors.all_connections()
    if target != "summary":
        page = selectors.batch_page(filters, request.GET.get("cursor"))
        context.update(page=page, rows=[_row(request, batch, context) for batch in page.rows])
        micros, unpriced = selectors.cost_total(filters)
        context.update(cost_total=money.dollars(micros), cost_unpriced=unpriced)
        # The page's one live request (batches.views_live), inside the table so that new filters bring
        # a poll for them. It marks as watched the connections the page shows (batches.pacing).
        watched = [str(c.pk) for c in connections if c.name == filters.connection]
        context.update(views_live.list_poll_context(request.GET, page, context["rows"], ",".join(watched)))
    if target != "batch-table":
        counts = selectors.status_counts(filters)
        health = selectors.sync_health(connections)
        context.update(
            counts=counts,
            health=health,
            summary_version=live_selectors.summary_version(counts, health, can_admin(request.user)),
        )
    if target != "summary" and can_operate(request.user):
        # Bulk cancel's "all N matching these filters", from the status counts (cached a few seconds).
        counts = context.get("counts") or selectors.status_counts(filters)
        context["bulk_matching"] = selectors_bulk.cancellable_matching(counts, filters)
        context["bulk_page"] = [row["pk"] for row in context["rows"] if row["cancel"]]
    if target not in ("summary", "batch-table"):
        # The filter form is only on the full page; the summary's fragment needs none of it.
        context.update(
            choices=selectors.filter_choices(connections),
            sort_labels=selectors.SORT_LABELS,
            outcomes_chart=selectors_history.outcomes_chart(filters, context["now"]),
        )
    template = "batches/list.html"
    if target == "batch-table":
        template += "#table"
    elif target == "summary":
        template += "#summary"
    return render(request, template, context)


@require_GET
# Not LoginRequiredMiddleware's check, which loads the user (a query) on every request: the poll is
# most of the traffic, and poll_login_required remembers who polls for a few seconds instead.
@login_not_required
@poll_login_required
def batch_row(request: PollRequest, pk: int) -> HttpResponse:
    """One row of the list, polled by the browser every few seconds while its batch is active. The
    poll carries the version of the row the browser shows (?v=); if nothing on it changed, a 204
    tells htmx to keep it, which costs a query and no render. Who asks, and whether they may cancel,
    comes from accounts.polls (checked in full every few seconds, not on every poll)."""
    batch = selectors.row_batch(pk)
    if batch is None:
        raise Http404("No such batch.")
    context = _row_context(request)
    may_cancel = request.poller.can_operate
    version = selectors.row_version(
        batch, now=context["now"], stalled_after=context["stalled_after"], can_operate=may_cancel
    )
    if version == request.GET.get("v"):
        return HttpResponse(status=204)
    # Rendered once per version for everyone (the version covers the role), as the page poll's rows.
    return HttpResponse(live_rows.row_poll_fragment(request, batch, version, context["now"]))


@require_GET
def batch_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    batch = _get_batch_for_user(request, pk)
    context = {**_row_context(request), "batch": batch}
    live_version, history_version = live_selectors.detail_versions(
        batch,
        now=context["now"],
        stalled_after=context["stalled_after"],
        can_operate=can_operate(request.user),
    )
    context.update(live_version=live_version, history_version=history_version)
    if request.htmx and request.htmx.target == "batch-history":
        context["history"] = selectors_history.batch_history(batch, context["now"])
        return render(request, "batches/detail.html#history", context)
    if request.htmx:
        return render(request, "batches/detail.html#live", context)
    context.update(views_live.detail_poll_context(batch))
    context.update(
        history=selectors_history.batch_history(batch, context["now"]),
        changes=list(batch.status_changes.all()),
        cancel_requests=list(batch.cancel_requests.select_related("user")[:20]),
        phases=selectors_history.phases(batch),
        cost=spend_selectors.batch_cost(batch),
    )
    return render(request, "batches/detail.html", context)


@require_http_methods(["GET", "POST"])
@role_required(OPERATOR)
def batch_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation (the page works without JavaScript); POST cancels through the API
    directly, not through Celery, so that it works while the workers are down."""
    batch = _get_batch_for_user(request, pk)
    if request.method == "GET":
        return render(request, "batches/cancel.html", {"batch": batch, "next": request.GET.get("next", "")})
    outcome = services.cancel_batch(batch, user=request.user, request=request)
    if request.htmx and request.POST.get("from") == "row":
        shown = selectors.row_batch(batch.pk)
        if shown is None:
            # Deleted meanwhile (with its connection): the row poll answers the same for it.
            raise Http404("No such batch.")
        context = {**_row_context(request), "cancel_outcome": outcome}
        context["row"] = _row(request, shown, context)
        return render(request, "batches/list.html#row", context)
    batch.refresh_from_db()
    if request.htmx:
        context = {**_row_context(request), "batch": batch, "cancel_outcome": outcome}
        return render(request, "batches/detail.html#live", context)
    (messages.success if outcome.ok else messages.error)(request, outcome.message)
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(
        next_url, {request.get_host()}, require_https=request.is_secure()
    ):
        # Not redirect(), which would take a bare word like "status" for a view name and fail.
        return HttpResponseRedirect(next_url)
    return redirect("batches:detail", pk=batch.pk)


def _query_without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()
