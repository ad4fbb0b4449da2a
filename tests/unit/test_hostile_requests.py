"""Cheap hostile requests get a 4xx, never a 5xx."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
import traceback
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls.resolvers import RegexPattern, RoutePattern
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from alerts import tasks as alert_tasks
from batches.models import Batch, Connection
from batches.statuses import KNOWN_STATUSES
from tests.conftest import free_port
from tests.support.factories import make_batch, make_user
from tests.support.pollers import forget_pollers
from tests.support.random_requests import (
    ADMIN_FORM_FIELDS,
    BY_DESIGN,
    FORM_FIELDS,
    GARBAGE,
    KNOWN_UPSTREAM,
    QUERY_NAMES,
    Route,
    _no_external_hosts,
    _routes,
    _user,
    _world,
)
from tests.support.webhook_signatures import signed_headers

pytestmark = pytest.mark.django_db


def _cursor(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.fixture
def viewer(client):
    client.force_login(make_user("hostile-viewer"))
    return client


def test_a_webhook_timestamp_of_400_digits_is_refused_with_a_400(client, settings):
    settings.OPENAI_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"hostile-requests-webhook-secret").decode()
    response = client.post(
        "/webhooks/openai/default/",
        b"{}",
        content_type="application/json",
        HTTP_WEBHOOK_ID="msg_1",
        HTTP_WEBHOOK_TIMESTAMP="9" * 400,
        HTTP_WEBHOOK_SIGNATURE="v1,AAAA",
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "values",
    [
        ["9999-12-31T23:59:59-23:59", 5],
        ["0001-01-01T00:00:00+23:59", 5],
        ["0001-01-01T00:00:00", 5],
        ["9999-12-31T23:59:59", 5],
        ["2025-01-01T00:00:00+00:00", 10**30],
        ["2025-01-01T00:00:00+00:00", -(10**30)],
    ],
)
def test_a_list_cursor_holding_an_out_of_range_value_is_not_a_500(viewer, values):
    make_batch(status="in_progress")
    response = viewer.get("/", {"cursor": _cursor(values)})
    assert response.status_code < 500


@pytest.mark.parametrize("sort", ["progress", "-progress", "status"])
def test_a_list_cursor_holding_an_out_of_range_number_is_not_a_500(viewer, sort):
    make_batch(status="in_progress")
    for values in (["in_progress", 1e308, 10**30], ["x", float("inf"), 2**63], [1, "nan", -(2**63) - 1]):
        cursor = _cursor(values if sort == "status" else values[1:])
        assert viewer.get("/", {"cursor": cursor, "sort": sort}).status_code < 500


@pytest.mark.parametrize("pk", [2**63, 2**64 + 1, 10**30])
def test_the_row_poll_with_an_id_beyond_64_bits_is_a_404(viewer, pk):
    response = viewer.get(f"/batches/{pk}/row/", HTTP_HX_REQUEST="true")
    assert response.status_code == 404


def test_a_list_cursor_holding_an_infinite_id_is_not_a_500(viewer):
    make_batch(status="in_progress")
    cursor = base64.urlsafe_b64encode(b'["2025-01-01T00:00:00+00:00", Infinity]').decode().rstrip("=")
    assert viewer.get("/", {"cursor": cursor}).status_code < 500


# --- every URL pattern, drawn by hypothesis ------------------------------------------------------------
#
# The patterns come from walking the URL resolver (tests/support/random_requests.py's _routes), so
# a new page is covered as soon as it is routed, and each gets examples of its own. Every example is
# sent as an anonymous visitor, a viewer and an admin, by GET and by POST, with hostile values in the
# path, the query, the form and (for the webhook) the headers. The test client raises whatever a view
# raises, and any 5xx fails the test; only the Django bugs and the designed 502 that the
# random-request suite lists are let through. Hypothesis tries the first alternative of each choice
# first, so the most hostile values lead every list below.

HUGE = [10**400, 10**30, 2**64 + 1, 2**63, 2**63 - 1, 2**53 + 1, 2**32, 2**31, 2**31 - 1, 0, 1]
DATES = [
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00",
    "10000-01-01",
    "-0001-01-01",
    "0000-00-00",
    "2026-02-31",
    "2026-13-01",
    "2024-01-01T25:61:61",
    "9999-12-31",
    "0001-01-01",
    "1970-01-01T00:00:00Z",
]
WORST = ["9" * 400, "\x00", "a\x00b", "-1", "1e309", "NaN", "\ud7ff\u202e", "💥" * 50, "x" * 5000]
ODD = "\x00\x01\r\n\t \u202e\u200b\ufeff\u0301üß日本💥²١٢Ⅻ%/'\"<>&;#?+=\\"

hostile_text = st.one_of(
    st.sampled_from(WORST),
    st.sampled_from(HUGE).map(str),
    st.sampled_from(DATES),
    st.sampled_from(GARBAGE),
    st.text(alphabet=ODD + "abcXYZ019-_.:", max_size=30),
    st.text(max_size=20),
    st.integers(-(10**40), 10**40).map(str),
)
number = st.one_of(st.sampled_from(HUGE), st.integers(0, 10**40)).map(str)


def _b64_json(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


json_number = st.one_of(
    st.sampled_from(HUGE), st.sampled_from([float("inf"), float("nan"), -1e308]), st.floats()
)
json_value = st.one_of(st.none(), st.booleans(), json_number, st.integers(-(2**70), 2**70), hostile_text)
# The list's keyset cursor is base64 of a JSON array of the sort's values. Forged ones: each sort's
# shape with hostile values in it (an out-of-range date, an id beyond 64 bits), or anything at all.
cursor = st.one_of(
    st.tuples(st.sampled_from(DATES), json_number).map(list).map(_b64_json),
    st.tuples(st.sampled_from(KNOWN_STATUSES), st.sampled_from(DATES), json_number).map(list).map(_b64_json),
    st.tuples(json_number, json_number).map(list).map(_b64_json),
    st.lists(json_value, max_size=4).map(_b64_json),
    hostile_text,
)

# Fields whose value the dashboard registers as a secret once it uses it: the whole run then checks
# that no page shows it (tests/conftest.py), and a drawn "key" such as 2026-13-01 is on many pages.
SECRET_FIELDS = {"api_key", "secret"}


def _value_for(name: str, known: dict[str, list[str]]) -> st.SearchStrategy[str]:
    if name in SECRET_FIELDS:
        return st.one_of(hostile_text.map(lambda value: f"sk-hostile-{value}"), st.sampled_from(["", "\x00"]))
    choices = [cursor] if name == "cursor" else []
    choices += [hostile_text, number]
    if known.get(name):
        choices.append(st.sampled_from(known[name]))
    return st.one_of(*choices)


def _segment(
    converter: str, name: str, ids: list[int], known: dict[str, list[str]]
) -> st.SearchStrategy[str]:
    real_ids = st.sampled_from(ids).map(str)
    if converter == "int":
        return st.one_of(number, real_ids)
    text = _value_for(name, known)
    if converter == "path":
        # An admin object id: a number, a real one, or text with its slashes left as they are.
        return st.one_of(number, real_ids, text.map(lambda value: quote(value, safe="/")))
    return text.map(lambda value: quote(value, safe=""))


def _path(route: Route, ids: list[int], known: dict[str, list[str]]) -> st.SearchStrategy[str]:
    """The route's pattern with every converter (or regex group) filled in."""
    pieces: list[st.SearchStrategy[str]] = []
    for pattern in route.parts:
        text = str(pattern)
        if isinstance(pattern, RegexPattern):
            # Django's own regex patterns (the admin's app index): one of the alternatives, or anything.
            text = text.removeprefix("^").removesuffix("$")
            position = 0
            for match in re.finditer(r"\(\?P<(\w+)>([^)]*)\)", text):
                pieces.append(st.just(text[position : match.start()]))
                anything = hostile_text.map(lambda value: quote(value, safe=""))
                if re.fullmatch(r"[\w|]+", match.group(2)):
                    pieces.append(st.one_of(st.sampled_from(match.group(2).split("|")), anything))
                else:
                    pieces.append(anything)
                position = match.end()
            pieces.append(st.just(text[position:]))
            continue
        assert isinstance(pattern, RoutePattern), pattern
        position = 0
        for match in re.finditer(r"<(?:(\w+):)?(\w+)>", text):
            pieces.append(st.just(text[position : match.start()]))
            pieces.append(_segment(match.group(1) or "str", match.group(2), ids, known))
            position = match.end()
        pieces.append(st.just(text[position:]))
    return st.tuples(*pieces).map(lambda parts: "/" + "".join(parts))


def _query(known: dict[str, list[str]]) -> st.SearchStrategy[str]:
    """Any of the names the pages read (most at once), and a few more."""
    names = st.fixed_dictionaries(
        {}, optional={name: _value_for(name, known) for name in ("cursor", "v", *QUERY_NAMES)}
    )
    extra = st.dictionaries(hostile_text, hostile_text, max_size=2)
    return st.tuples(names, extra).map(lambda both: urlencode([*both[0].items(), *both[1].items()]))


def _form(route: Route, known: dict[str, list[str]]) -> st.SearchStrategy[dict[str, object]]:
    names = FORM_FIELDS.get(route.name) or (ADMIN_FORM_FIELDS if route.name.startswith("admin:") else [])
    optional: dict[str, st.SearchStrategy[object]] = {}
    for name in names:
        if name == "file":
            optional[name] = st.binary(max_size=200).map(
                lambda content: SimpleUploadedFile("in.jsonl", content)
            )
        else:
            optional[name] = st.one_of(_value_for(name, known), st.lists(_value_for(name, known), max_size=3))
    fields = st.fixed_dictionaries({}, optional=optional)
    extra = st.dictionaries(hostile_text.map(lambda name: name[:40] or "x"), hostile_text, max_size=2)
    return st.tuples(fields, extra).map(lambda both: {**both[1], **both[0]})


@dataclass(frozen=True)
class Request:
    path: str
    query: str
    body: object  # a form (a dict), or (bytes, content type)
    headers: dict[str, str]


def _webhook_headers(secret: str) -> st.SearchStrategy[tuple[bytes, dict[str, str]]]:
    """A body and the Standard Webhooks headers: hostile ones, or a real signature over a hostile
    timestamp that int() takes."""
    body = st.one_of(
        hostile_text.map(
            lambda batch_id: json.dumps({"type": "batch.completed", "data": {"id": batch_id}}).encode()
        ),
        hostile_text.map(lambda text: text.encode()),
        st.binary(max_size=64),
    )
    timestamp = st.one_of(
        hostile_text,
        st.sampled_from([0, -9999, 10**12]).map(lambda offset: str(int(time.time()) + offset)),
    )

    def headers(content: bytes, message_id: str, stamp: str, signature: str, sign: bool):
        given = {"webhook-id": message_id, "webhook-timestamp": stamp, "webhook-signature": signature}
        if sign:
            with contextlib.suppress(ValueError):
                given = signed_headers(secret, message_id, int(stamp), content)
        # A header value cannot hold a line break (the HTTP server would refuse it first).
        return content, {
            f"HTTP_{name.upper().replace('-', '_')}": value.replace("\n", "").replace("\r", "")
            for name, value in given.items()
        }

    return st.builds(
        headers,
        body,
        st.one_of(st.just("msg_1"), hostile_text),
        timestamp,
        st.one_of(hostile_text, st.just("v1,AAAA")),
        st.booleans(),
    )


def _requests(
    route: Route, ids: list[int], known: dict[str, list[str]], secret: str
) -> st.SearchStrategy[Request]:
    path = _path(route, ids, known)
    if route.name == "alerts:openai_webhook":
        return st.builds(
            lambda path, query, signed: Request(path, query, (signed[0], "application/json"), signed[1]),
            path,
            _query(known),
            _webhook_headers(secret),
        )
    body = st.one_of(
        _form(route, known),
        st.tuples(hostile_text.map(str.encode), st.just("application/json")),
        st.tuples(st.binary(max_size=64), hostile_text.map(lambda text: text.replace("\x00", "")[:60])),
    )
    targets = st.sampled_from(["summary", "batch-table", "batch-history", "file-preview"])
    htmx = st.one_of(
        st.just({}),
        st.builds(
            lambda target: {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target},
            st.one_of(targets, hostile_text),
        ),
    )
    return st.builds(Request, path=path, query=_query(known), body=body, headers=htmx)


EXAMPLES_PER_OWN_ROUTE = 20
# Django's admin is Django's own code, and has most of the patterns.
EXAMPLES_PER_ADMIN_ROUTE = 2


def _send(client: Client, method: str, request: Request, url: str):
    if method == "GET":
        return client.get(url, **request.headers)
    if isinstance(request.body, dict):
        return client.post(url, request.body, **request.headers)
    content, content_type = request.body
    return client.generic("POST", url, content, content_type=content_type, **request.headers)


@pytest.mark.slow
def test_no_url_pattern_answers_a_hostile_request_with_a_5xx(db, start_simulator, settings, monkeypatch):
    simulator = start_simulator(batches=30, seed=3)
    refused_hosts = _no_external_hosts(monkeypatch)
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    settings.OPENAI_API_KEY = "sk-test-environment"
    settings.OPENAI_MAX_RETRIES = 0
    settings.OPENAI_READ_TIMEOUT = 5.0
    secret = "whsec_" + base64.b64encode(b"hostile-requests-webhook-secret-1").decode()
    settings.OPENAI_WEBHOOK_SECRET = secret
    settings.METRICS_TOKEN = "hostile-requests-metrics-token"
    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    monkeypatch.setattr(alert_tasks.refresh_batch_now, "delay", lambda *args: None)
    known = _world(simulator, monkeypatch)
    ids = sorted(
        {*Batch.objects.values_list("pk", flat=True), *Connection.objects.values_list("pk", flat=True)}
    )
    # Sign-in attempts hash the password they are given: Django's default hasher made them a tenth
    # of the run.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    clients = {"anonymous": Client()}
    for role in ("viewer", "admin"):
        clients[role] = Client()
        clients[role].force_login(_user(role, 0))
    cookie = django_settings.SESSION_COOKIE_NAME
    sessions = {who: client.cookies.get(cookie) for who, client in clients.items()}
    statuses: dict[str, dict[int, int]] = {who: {} for who in clients}
    tolerated: list[str] = []

    def send(who: str, method: str, request: Request) -> None:
        url = f"{request.path}?{request.query}" if request.query else request.path
        cache.clear()
        forget_pollers()
        client = clients[who]
        # Each request alone: whatever it wrote (a sign-out, a deleted user) is rolled back after it,
        # and the client gets its own session cookie back.
        client.cookies.clear()
        if sessions[who] is not None:
            client.cookies[cookie] = sessions[who].value
        with transaction.atomic():
            try:
                response = _send(client, method, request, url)
                if response.streaming:
                    b"".join(response.streaming_content)
            except Exception:
                detail = traceback.format_exc()
                if not any(
                    url_pattern.search(url) and error_pattern.search(detail)
                    for url_pattern, error_pattern in KNOWN_UPSTREAM.values()
                ):
                    raise
                tolerated.append(f"{method} {url[:200]!r}")
                return
            finally:
                transaction.set_rollback(True)
        statuses[who][response.status_code] = statuses[who].get(response.status_code, 0) + 1
        by_design = any(
            response.status_code == status and pattern.search(request.path)
            for status, pattern in BY_DESIGN.values()
        )
        assert response.status_code < 500 or by_design, (
            f"{who} {method} {url[:300]!r} -> {response.status_code}: "
            f"{b'' if response.streaming else response.content[:300]!r}"
        )

    started = time.monotonic()
    routes = _routes()
    for route in routes:
        examples = EXAMPLES_PER_ADMIN_ROUTE if route.name.startswith("admin") else EXAMPLES_PER_OWN_ROUTE

        @hypothesis_settings(
            max_examples=examples,
            derandomize=True,  # the same requests on every run, in CI too
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(request=_requests(route, ids, known, secret))
        def check(request: Request) -> None:
            for who in ("anonymous", "viewer", "admin"):
                for method in ("GET", "POST"):
                    send(who, method, request)

        check()
    elapsed = time.monotonic() - started
    print(f"{len(routes)} URL patterns in {elapsed:.1f} s; statuses {statuses}; Django bugs: {tolerated}")
    # The signed-in clients stayed signed in and reached the pages, anonymous ones were sent to sign in.
    assert statuses["viewer"].get(200, 0) > 50 and statuses["admin"].get(200, 0) > 50
    assert statuses["anonymous"].get(302, 0) > 100
    assert refused_hosts == [], f"requests tried to leave the machine: {sorted(set(refused_hosts))}"
