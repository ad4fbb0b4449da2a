from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

from dashboard.htmx import HtmxHttpRequest


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's: every view needs a signed-in user unless marked @login_not_required. Two changes:

    - the mark is read first: Django's asks request.user.is_authenticated before it, which loads the
      user (a query) on every request, also the row poll's, which is marked so that it can skip that
      load (accounts.polls);
    - the admin site's views are left to the admin, which checks staff itself and sends to its own
      login page (Django's sends its model pages to ours instead)."""

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponseBase],
        view_args: Any,
        view_kwargs: Any,
    ) -> HttpResponseBase | None:
        if not getattr(view_func, "login_required", True):
            return None
        if hasattr(view_func, "admin_site") or hasattr(view_func, "model_admin"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class HtmxLoginRedirectMiddleware:
    """An htmx request from an expired session would swap the login form into a table cell; send the
    whole page to the login instead."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.login_path = resolve_url(settings.LOGIN_URL)

    def __call__(self, request: HtmxHttpRequest) -> HttpResponse:
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
