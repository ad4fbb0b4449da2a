"""The request type of views that only a signed-in user reaches.

LoginRequiredMiddleware (batches.middleware) turns everyone else away before such a view runs, so
its request.user is a User, never AnonymousUser; django-stubs' documentation has projects declare
this class to say so."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthenticatedHttpRequest(HttpRequest):
    user: User
