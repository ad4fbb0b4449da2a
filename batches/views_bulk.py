"""Bulk cancel: the confirmation (a real page, reachable without JavaScript) and the progress page,
which polls its own fragment until every batch is answered."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.contrib import messages
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from accounts.roles import OPERATOR, role_required
from batches import selectors_bulk, services_bulk
from batches.models import Batch
from batches.selectors import BatchFilters
from dashboard.htmx import HtmxHttpRequest

_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass(frozen=True)
class _Selection:
    """What the list's bulk form (or the confirmation's hidden fields) chose."""

    scope: str  # "selected" or "filtered"
    batch_pks: tuple[int, ...]
    filters_query: str  # the list's query string: where "keep them running" returns, and the filters

    @classmethod
    def from_data(cls, data: QueryDict) -> _Selection:
        chosen = data.getlist("batch")
        if data.get("page_all"):
            # Without JavaScript, "select all on this page" carries the page's batches itself.
            chosen += data.getlist("page_batch")
        pks: list[int] = []
        for value in chosen[: selectors_bulk.BULK_CANCEL_LIMIT + 1]:
            if value.isdecimal() and len(value) < 19 and int(value) not in pks:
                pks.append(int(value))
        scope = "filtered" if data.get("scope") == "filtered" else "selected"
        return cls(scope=scope, batch_pks=tuple(pks), filters_query=data.get("filters", "")[:4000])

    @property
    def filters(self) -> BatchFilters:
        return BatchFilters.from_query(QueryDict(self.filters_query))

    def batches(self) -> QuerySet[Batch]:
        return selectors_bulk.selected_batches(
            self.batch_pks, self.filters if self.scope == "filtered" else None
        )

    def words(self, count: int) -> str:
        if self.scope == "selected":
            return f"{count} selected batch{'es' if count != 1 else ''}"
        shown = [
            f"{key}={value}"
            for key, values in QueryDict(self.filters_query).lists()
            for value in values
            if key not in ("sort", "cursor") and value
        ]
        return "every cancellable batch matching " + (
            ", ".join(shown) if shown else "no filter (all batches)"
        )


@require_http_methods(["GET", "POST"])
@role_required(OPERATOR)
def bulk_cancel(request: HtmxHttpRequest) -> HttpResponse:
    """GET names what would happen; POST (with the page's idempotency key) records the request and
    hands it to a Celery task, then redirects to its progress page."""
    data = request.POST if request.method == "POST" else request.GET
    selection = _Selection.from_data(data)
    batches = selection.batches()
    summary = selectors_bulk.summarize(batches)
    key = data.get("key", "")
    if request.method == "POST" and _KEY.fullmatch(key) and not summary.too_many:
        # Called even when nothing is left to cancel: a replayed POST then finds its own request.
        outcome = services_bulk.start_bulk_cancel(
            key=key,
            batches=batches,
            selection=selection.words(summary.count),
            user=request.user,
            request=request,
        )
        if outcome.bulk is not None:
            return HttpResponseRedirect(reverse("batches:bulk_cancel_progress", args=[outcome.bulk.pk]))
        messages.error(request, outcome.message)
        return HttpResponseRedirect(reverse("batches:list") + _query(selection.filters_query))
    expired = request.method == "POST" and not _KEY.fullmatch(key)
    return render(
        request,
        "batches/bulk_cancel.html",
        {
            "selection": selection,
            "summary": summary,
            "words": selection.words(summary.count),
            "key": uuid.uuid4().hex,
            "back": reverse("batches:list") + _query(selection.filters_query),
            "limit": selectors_bulk.BULK_CANCEL_LIMIT,
            "expired": expired,
        },
        status=400 if expired else 200,
    )


@require_GET
def bulk_cancel_progress(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The page, or its progress fragment for the poll (which stops once every batch is answered)."""
    bulk = selectors_bulk.get_bulk(pk)
    if bulk is None:
        raise Http404("No such bulk cancel.")
    context = {"bulk": bulk, "progress": selectors_bulk.bulk_progress(bulk)}
    if request.htmx and request.htmx.target == "bulk-progress":
        return render(request, "batches/bulk_progress.html#progress", context)
    return render(request, "batches/bulk_progress.html", context)


def _query(query: str) -> str:
    return f"?{query}" if query else ""
