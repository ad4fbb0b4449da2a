from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect


class HtmxLoginRedirectMiddleware:
    """An htmx request from an expired session would swap the login form into a table cell; send the
    whole page to the login instead."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.login_path = resolve_url(settings.LOGIN_URL)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            getattr(request, "htmx", False)
            and response.status_code == 302
            and response.get("Location", "").startswith(self.login_path)
        ):
            # The page the user is on, not the fragment URL, is where they should come back to.
            current = request.htmx.current_url_abs_path or "/"
            return HttpResponseClientRedirect(f"{self.login_path}?next={current}")
        return response
