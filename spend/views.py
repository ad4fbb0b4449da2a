"""The spend page (every signed-in user: money, not content), its CSV, and the admins' prices and
budgets."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import ADMIN, role_required
from dashboard.htmx import HtmxHttpRequest
from spend import charts, selectors, services
from spend.forms import BudgetForm, PriceForm


def _query_string(query: selectors.SpendQuery, **changes: Any) -> str:
    params: dict[str, str] = {"period": query.period, "group": query.group}
    if query.period == "custom" and query.start and query.end:
        params |= {"start": query.start.isoformat(), "end": query.end.isoformat()}
    else:
        params["on"] = query.on.isoformat()
    if query.key:
        params["key"] = query.key
    params |= {name: value for name, value in changes.items() if value is not None}
    return urlencode(params)


@require_GET
def spend_page(request: HtmxHttpRequest) -> HttpResponse:
    """The page, or its report alone for the htmx form (#spend-report)."""
    query = selectors.SpendQuery.from_query(request.GET)
    report = selectors.spend_report(query)
    ordered = [row.group for row in report.rows if row.micros]
    colours = charts.colours(ordered)
    first, last = query.days()
    context: dict[str, Any] = {
        "query": query,
        "report": report,
        "rows": [(row, colours.get(row.group, "")) for row in report.rows],
        "first": first,
        "last": last,
        # charts escapes every text it writes into the SVG.
        "chart": mark_safe(
            charts.spend_svg(
                report.buckets,
                report.series,
                ordered,
                hourly=query.hourly,
                label=(
                    f"Cost per {'hour' if query.hourly else 'day'} from {first} to {last}, "
                    f"by {query.group_label}"
                ),
            )
        ),
        "query_string": _query_string(query),
        "previous": _query_string(query, on=query.shifted(-1).isoformat()),
        "next": _query_string(query, on=query.shifted(1).isoformat()),
        "periods": selectors.PERIODS,
        "groups": selectors.GROUPS,
    }
    if request.htmx and request.htmx.target == "spend-report":
        return render(request, "spend/spend.html#report", context)
    context |= {
        "metadata_keys": selectors.metadata_keys(),
        "budgets": selectors.budget_states(timezone.now()),
    }
    return render(request, "spend/spend.html", context)


@require_GET
def spend_csv(request: HttpRequest) -> HttpResponse:
    """The table of the page with the same query, row for row and figure for figure."""
    query = selectors.SpendQuery.from_query(request.GET)
    report = selectors.spend_report(query)
    first, last = query.days()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="spend-{first}-{last}-{query.group}.csv"'
    writer = csv.writer(response)
    writer.writerow([query.group_label, "batches", "cost_usd", "share", "unpriced_batches"])
    for row in report.rows:
        # A leading = + - @ would be a formula to a spreadsheet: metadata values come from API users.
        group = f"'{row.group}" if row.group[:1] in ("=", "+", "-", "@") else row.group
        writer.writerow([group, row.batches, row.cost_text, row.share_text, row.unpriced])
    writer.writerow(
        ["Total", report.batches, report.total_text, "100.0 %" if report.total_micros else "0.0 %", ""]
    )
    return response


@require_GET
def price_list(request: HttpRequest) -> HttpResponse:
    return render(request, "spend/prices.html", {"prices": selectors.prices()})


def _pk(pk: int) -> Any:
    price = selectors.price_or_none(pk)
    if price is None:
        raise Http404("No such price.")
    return price


@require_http_methods(["GET", "POST"])
@role_required(ADMIN)
def price_edit(request: HttpRequest, pk: int | None = None) -> HttpResponseBase:
    price = _pk(pk) if pk is not None else None
    initial = {"model": request.GET.get("model", "")[:200]} if price is None else None
    form = (
        PriceForm(request.POST or None, instance=price, initial=initial)
        if initial
        else PriceForm(request.POST or None, instance=price)
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        saved, repriced = services.save_price(
            services.PriceChange(
                data["model"], data["connection"], data["input"], data["cached_input"], data["output"]
            ),
            actor=request.user,
            request=request,
            pk=price.pk if price else None,
        )
        messages.success(request, f"Saved the price of {saved}; {repriced} batches repriced.")
        return redirect("spend:prices")
    return render(request, "spend/price_form.html", {"form": form, "price": price})


@require_POST
@role_required(ADMIN)
def price_delete(request: HttpRequest, pk: int) -> HttpResponseBase:
    price = _pk(pk)
    repriced = services.delete_price(price, actor=request.user, request=request)
    messages.success(request, f"Deleted the price of {price.model}; {repriced} batches repriced.")
    return redirect("spend:prices")


@require_http_methods(["GET", "POST"])
@role_required(ADMIN)
def budget_new(request: HttpRequest) -> HttpResponseBase:
    form = BudgetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        budget = services.create_budget(
            name=data["name"],
            connection=data["connection"],
            metadata_key=data["metadata_key"],
            metadata_value=data["metadata_value"],
            monthly_usd=data["monthly_usd"],
            actor=request.user,
            request=request,
        )
        messages.success(request, f"Budget {budget} saved.")
        return redirect("spend:page")
    return render(request, "spend/budget_form.html", {"form": form})


@require_POST
@role_required(ADMIN)
def budget_delete(request: HttpRequest, pk: int) -> HttpResponseBase:
    budget = selectors.budget_or_none(pk)
    if budget is None:
        raise Http404("No such budget.")
    services.delete_budget(budget, actor=request.user, request=request)
    messages.success(request, f"Budget {budget} deleted.")
    return redirect("spend:page")
