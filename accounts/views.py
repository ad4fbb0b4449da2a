from __future__ import annotations

import csv
from datetime import datetime, time

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET

from accounts.models import AuditEvent
from accounts.roles import ADMIN, role_required


def _filtered_events(request: HttpRequest) -> tuple[QuerySet[AuditEvent], dict[str, str]]:
    events = AuditEvent.objects.all()
    chosen = {
        "action": request.GET.get("action", "").strip(),
        "actor": request.GET.get("actor", "").strip().replace("\x00", "")[:150],
        "target": request.GET.get("target", "").strip().replace("\x00", "")[:300],
        "since": request.GET.get("since", "").strip(),
        "until": request.GET.get("until", "").strip(),
    }
    if chosen["action"] in AuditEvent.Action.values:
        events = events.filter(action=chosen["action"])
    else:
        chosen["action"] = ""
    if chosen["actor"]:
        events = events.filter(actor_name__icontains=chosen["actor"])
    if chosen["target"]:
        events = events.filter(target__icontains=chosen["target"])
    for name, lookup, moment in (("since", "at__gte", time.min), ("until", "at__lte", time.max)):
        try:
            day = parse_date(chosen[name]) if chosen[name] else None
        except ValueError:
            day = None
        if day is None:
            chosen[name] = ""
            continue
        events = events.filter(**{lookup: timezone.make_aware(datetime.combine(day, moment))})
    return events, chosen


@require_GET
@role_required(ADMIN)
def audit_log(request: HttpRequest) -> HttpResponse:
    events, chosen = _filtered_events(request)
    paginator = Paginator(events.select_related("actor"), 100)
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "accounts/audit.html",
        {"page": page, "chosen": chosen, "actions": AuditEvent.Action.choices, "query": query.urlencode()},
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


@require_GET
@role_required(ADMIN)
def audit_log_csv(request: HttpRequest) -> StreamingHttpResponse:
    events, _ = _filtered_events(request)
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(["at", "actor", "action", "target", "succeeded", "detail", "ip_address"])
        for event in events.iterator(chunk_size=1000):
            yield writer.writerow(
                [
                    event.at.isoformat(),
                    _csv_safe(event.actor_name),
                    event.action,
                    _csv_safe(event.target),
                    "yes" if event.succeeded else "no",
                    _csv_safe(event.detail),
                    event.ip_address or "",
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
    return response


def _csv_safe(value: str) -> str:
    """A cell starting with = + - @ is a formula to a spreadsheet: quote it as text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
