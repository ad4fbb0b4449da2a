"""django-csp's middleware with the settings' policy built once rather than for every response.

CSPMiddleware builds the Content-Security-Policy header from the settings on every response (both
the enforced and the report-only header: a deep copy of the directives and a join each): about 7 % of
a page poll, the request every open page sends every few seconds (benchmarks/bench_open_tabs.py).
When nothing varies per response (no csp_update/csp_replace/csp decorator on the view, no nonce used),
the header is a function of the settings alone, so it is built once and built again when a test
changes those settings. Everything else (nonces, per-view policies, exemptions) goes to django-csp.
"""

from __future__ import annotations

import http.client
from dataclasses import asdict
from typing import ClassVar

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase

# What django-csp's decorators set on a response: any of them makes the policy the view's own.
_PER_RESPONSE = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
)


class SettingsPolicyCSPMiddleware(CSPMiddleware):
    # (enforced, report-only) as the settings give them; None until first built.
    _built: ClassVar[tuple[str, str] | None] = None

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        debug_page = settings.DEBUG and response.status_code in (
            http.client.INTERNAL_SERVER_ERROR,
            http.client.NOT_FOUND,
        )
        own_policy = any(getattr(response, name, None) is not None for name in _PER_RESPONSE)
        if debug_page or own_policy or getattr(request, "_csp_nonce", None) is not None:
            return super().process_response(request, response)
        enforced, report_only = self._settings_policy(request, response)
        for header, policy, exempt, setting in (
            (HEADER, enforced, "_csp_exempt", "CONTENT_SECURITY_POLICY"),
            (HEADER_REPORT_ONLY, report_only, "_csp_exempt_ro", "CONTENT_SECURITY_POLICY_REPORT_ONLY"),
        ):
            prefixes = tuple((getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ())
            excluded = bool(prefixes) and request.path_info.startswith(prefixes)
            if policy and header not in response and not getattr(response, exempt, False) and not excluded:
                response[header] = policy
        # As django-csp does: a nonce asked for after the header was written is an error, not a no-op.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response

    def _settings_policy(self, request: HttpRequest, response: HttpResponseBase) -> tuple[str, str]:
        built = type(self)._built
        if built is None:
            enforced = build_policy(**asdict(self.get_policy_parts(request, response)))
            parts = self.get_policy_parts(request, response, report_only=True)
            built = (enforced, build_policy(**asdict(parts), report_only=True))
            type(self)._built = built
        return built


@receiver(setting_changed)
def _forget_policy(setting: str, **kwargs: object) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        SettingsPolicyCSPMiddleware._built = None
