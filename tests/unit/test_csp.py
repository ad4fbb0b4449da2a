"""The CSP middleware that builds the settings' policy once (dashboard/csp.py) answers as django-csp's."""

from __future__ import annotations

import pytest
from csp.constants import HEADER, HEADER_REPORT_ONLY, NONCE
from csp.middleware import CSPMiddleware
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from dashboard.csp import SettingsPolicyCSPMiddleware


def _through(middleware_class, prepare=lambda request, response: None, path="/"):
    request = RequestFactory().get(path)
    response = HttpResponse("ok")
    middleware = middleware_class(lambda request: response)
    middleware.process_request(request)
    prepare(request, response)
    return request, middleware.process_response(request, response)


def _headers(response):
    return response.get(HEADER), response.get(HEADER_REPORT_ONLY)


def test_it_sends_the_same_headers_as_django_csp():
    _, ours = _through(SettingsPolicyCSPMiddleware)
    _, theirs = _through(CSPMiddleware)
    assert ours[HEADER] and "default-src 'self'" in ours[HEADER]
    assert _headers(ours) == _headers(theirs)
    _, again = _through(SettingsPolicyCSPMiddleware)
    assert _headers(again) == _headers(theirs)


def test_a_changed_setting_is_followed_at_once():
    _through(SettingsPolicyCSPMiddleware)  # built and kept
    policy = {"DIRECTIVES": {"default-src": ["'none'"]}}
    with override_settings(CONTENT_SECURITY_POLICY=policy, CONTENT_SECURITY_POLICY_REPORT_ONLY=policy):
        _, ours = _through(SettingsPolicyCSPMiddleware)
        assert _headers(ours) == ("default-src 'none'", "default-src 'none'")
    _, after = _through(SettingsPolicyCSPMiddleware)
    assert "default-src 'self'" in after[HEADER]


@pytest.mark.parametrize(
    "prepare",
    [
        pytest.param(
            lambda req, res: setattr(res, "_csp_update", {"img-src": ["https://x.test"]}), id="update"
        ),
        pytest.param(
            lambda req, res: setattr(res, "_csp_replace", {"img-src": ["https://x.test"]}), id="replace"
        ),
    ],
)
def test_a_policy_of_the_views_own_is_django_csps(prepare):
    _, ours = _through(SettingsPolicyCSPMiddleware, prepare)
    _, plain = _through(SettingsPolicyCSPMiddleware)
    assert "https://x.test" in ours[HEADER] and "https://x.test" not in plain[HEADER]


def test_a_nonce_goes_into_the_header_of_its_own_response_only():
    policy = {"DIRECTIVES": {"default-src": ["'self'"], "script-src": ["'self'", NONCE]}}
    with override_settings(CONTENT_SECURITY_POLICY=policy):
        _through(SettingsPolicyCSPMiddleware)  # the plain policy built and kept
        request, ours = _through(SettingsPolicyCSPMiddleware, lambda req, res: str(req.csp_nonce))
        assert f"'nonce-{request._csp_nonce}'" in ours[HEADER]
        _, plain = _through(SettingsPolicyCSPMiddleware)
        assert "nonce-" not in plain[HEADER]


def test_an_exempt_response_or_excluded_path_gets_no_header_and_a_set_one_is_kept():
    _, exempt = _through(SettingsPolicyCSPMiddleware, lambda req, res: setattr(res, "_csp_exempt", True))
    assert HEADER not in exempt
    _, own = _through(
        SettingsPolicyCSPMiddleware, lambda req, res: res.__setitem__(HEADER, "default-src 'none'")
    )
    assert own[HEADER] == "default-src 'none'"
    policy = {"EXCLUDE_URL_PREFIXES": ["/skip"], "DIRECTIVES": {"default-src": ["'self'"]}}
    with override_settings(CONTENT_SECURITY_POLICY=policy):
        _, excluded = _through(SettingsPolicyCSPMiddleware, path="/skip/me")
        assert HEADER not in excluded


def test_a_nonce_asked_for_after_the_header_is_written_is_an_error():
    from csp.exceptions import CSPNonceError

    request, _ = _through(SettingsPolicyCSPMiddleware)
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)
