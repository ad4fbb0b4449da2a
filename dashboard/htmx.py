"""The request type of views that read request.htmx (set by django-htmx's HtmxMiddleware).

django-htmx ships no such class; its documentation has projects declare this one, so that a type
checker knows request.htmx."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
