"""1,000 random requests (URLs from the real URL patterns with random ids and strings, random query
strings and headers, random form posts) as an admin, a viewer and an anonymous visitor: none may
get a 5xx. Every API connection points at the simulator or at a closed loopback port, and any
attempt to resolve a host that is not loopback is refused and reported."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import socket
import time
import traceback
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import got_request_exception
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils import timezone

from alerts import tasks as alert_tasks
from alerts.models import Channel, Delivery
from batches import connections, sync
from batches.models import Batch, Connection
from batches.statuses import KNOWN_STATUSES
from tests.conftest import free_port
from tests.support.factories import make_batch, make_user
from tests.support.webhook_signatures import signed_headers

# FAULTS_FUZZ_SEED explores other seeds; the suite itself always runs the same requests.
SEED = int(os.environ.get("FAULTS_FUZZ_SEED", "92025"))
REQUESTS = 1000
LOOPBACK = {"127.0.0.1", "localhost", "::1", "testserver"}

GARBAGE = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "2",
    "99999999999999999999999",
    "1e309",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
    '{"a": [1, {"b": null}]}',
    "\x00",
    "a\x00b",
    "%00",
    "'",
    '"',
    "';--",
    '"><script>alert(1)</script>',
    "{{ 7*7 }}",
    "{% debug %}",
    "../../etc/passwd",
    "..",
    "/",
    "//evil",
    "\\",
    "ü",
    "日本語",
    "💥",
    "\u202e",
    "\ud7ff",
    "²",
    "١٢",
    "Ⅻ",
    "\r\nX-Injected: 1",
    "\t",
    "a" * 300,
    "é" * 3000,
    "x" * 70_000,
    "2026-02-31",
    "2026-13-01",
    "0000-00-00",
    "9999-12-31",
    "2024-01-01T00:00:00",
    "key=value",
    "=",
    "project=",
    "a__b=c",
    "metadata__project=x",
    "-created",
    "status",
    "in_progress",
    "completed",
    "input",
    "output",
    "error",
    "batch_",
    "file-",
    "%",
    "%zz",
    "+",
    "&",
    "#",
    "?",
    ";",
]
QUERY_NAMES = [
    # The list's filters and paging
    "status",
    "connection",
    "endpoint",
    "model",
    "created_from",
    "created_to",
    "meta",
    "q",
    "sort",
    "cursor",
    # Results, cancel, audit log
    "page",
    "size",
    "next",
    "action",
    "actor",
    "target",
    "since",
    "until",
    # The spend page
    "period",
    "on",
    "start",
    "end",
    "group",
    "key",
    # Django admin's own
    "o",
    "p",
    "e",
    "all",
    "_to_field",
    "_popup",
    "_changelist_filters",
    "status__exact",
    "connection__id__exact",
    "id__in",
    "created_at__gte",
]
FORM_FIELDS = {
    "batches:cancel": ["next", "from"],
    "batches:resubmit": ["again"],
    "batches:create": ["connection", "endpoint", "completion_window", "metadata", "file"],
    "batches:connection_new": [
        "name",
        "provider",
        "base_url",
        "api_key_env",
        "organization",
        "project",
        "enabled",
        "refresh_interval",
        "full_sync_interval",
        "key_storage",
        "api_key",
    ],
    "alerts:channels": [
        "name",
        "kind",
        "url",
        "url_env",
        "email",
        "secret",
        "secret_env",
        "connection",
        "events",
        "enabled",
        "team",
    ],
    "login": ["username", "password", "next"],
    "admin:login": ["username", "password", "next"],
    "admin:password_change": ["old_password", "new_password1", "new_password2"],
}
FORM_FIELDS["batches:connection_edit"] = FORM_FIELDS["batches:connection_new"]
FORM_FIELDS["spend:price_new"] = ["model", "connection", "input", "cached_input", "output"]
FORM_FIELDS["spend:price_edit"] = FORM_FIELDS["spend:price_new"]
FORM_FIELDS["spend:budget_new"] = ["name", "connection", "metadata", "monthly_usd"]
ADMIN_FORM_FIELDS = ["action", "_selected_action", "select_across", "index", "post", "_save", "name", "q"]


# 5xx that come from Django itself, not from this project; each is reported, not failed.
KNOWN_UPSTREAM = {
    # Django 5.2's admin checks `_to_field` only when it is not empty, then looks the empty name up:
    # /admin/<app>/<model>/<id>/change/?_to_field= (or delete/) raises FieldDoesNotExist, a 500.
    "Django admin, empty _to_field": (
        re.compile(r"^/admin/.*[?&]_to_field=(&|$)"),
        re.compile(r"django/contrib/admin/options\.py.*FieldDoesNotExist: \w+ has no field named ''", re.S),
    ),
    # ...and ?_to_field=+ names the hidden reverse relation of a ForeignKey(related_name="+"), which
    # to_field_allowed() takes for a field: AttributeError, a 500.
    "Django admin, _to_field naming a reverse relation": (
        re.compile(r"^/admin/.*[?&]_to_field="),
        re.compile(r"in to_field_allowed.*AttributeError: '\w+Rel' object has no attribute", re.S),
    ),
    # Django's admin passes its changelist filters (?status__exact=, ?username=, ...) to the query
    # unchecked: PostgreSQL refuses a NUL byte in text, a 500 (SQLite takes it). Staff only.
    "Django admin, NUL byte in a changelist filter (PostgreSQL)": (
        re.compile(r"^/admin/.*[?&][^=&]*=[^&]*%00"),
        re.compile(r"django/contrib/admin/.*cannot contain NUL", re.S),
    ),
    # An admin action posted with ids that are not numbers (`_selected_action=abc`): response_action()
    # filters pk__in with them unchecked, ValueError, a 500.
    "Django admin, action on ids that are not numbers": (
        re.compile(r"^/admin/\w+/\w+/(\?|$)"),
        re.compile(r"in response_action.*ValueError: Field 'id' expected a number", re.S),
    ),
}


# 5xx the project sends on purpose. A download is a gateway to the API: when the API cannot serve the
# file (here, a connection on a closed port) the answer is 502 Bad Gateway, as tests/unit/test_results.py
# asserts.
BY_DESIGN = {"download through an unreachable API": (502, re.compile(r"^/batches/\d+/files/[^/]+/download/"))}


@dataclass(frozen=True)
class Route:
    name: str
    parts: tuple  # the chain of patterns, outermost first


def _routes() -> list[Route]:
    def walk(patterns, chain, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, [namespace, pattern.namespace]))
                yield from walk(pattern.url_patterns, (*chain, pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                name = ":".join(filter(None, [namespace, pattern.name or ""]))
                yield Route(name, (*chain, pattern.pattern))

    return list(walk(get_resolver().url_patterns, (), ""))


class Fuzzer:
    def __init__(self, rng: random.Random, ids: list[int], values: dict[str, list[str]]) -> None:
        self.rng = rng
        self.ids = ids
        self.values = values  # valid values for some names, mixed in with garbage

    def text(self) -> str:
        choice = self.rng.random()
        if choice < 0.55:
            return self.rng.choice(GARBAGE)
        if choice < 0.75:
            return "".join(
                self.rng.choice("abcXYZ019_-./:=%&?# \x00ü💥") for _ in range(self.rng.randint(1, 30))
            )
        name = self.rng.choice(list(self.values))
        return self.rng.choice(self.values[name])

    def number(self) -> str:
        choice = self.rng.random()
        if choice < 0.6 and self.ids:
            return str(self.rng.choice(self.ids))
        return self.rng.choice(["0", "1", "7", "2147483648", "9223372036854775808", "9" * 30, "00001"])

    def value_for(self, name: str) -> str:
        if name in self.values and self.rng.random() < 0.5:
            return self.rng.choice(self.values[name])
        if self.rng.random() < 0.2:
            return self.number()
        return self.text()

    def segment(self, converter: str, name: str) -> str:
        if converter == "int":
            return self.number()
        if converter == "path" and self.rng.random() < 0.2:
            return f"{self.number()}/{quote(self.text(), safe='')}"
        if self.rng.random() < 0.5:
            return self.number() if converter == "path" else quote(self.value_for(name), safe="")
        return quote(self.text(), safe="")

    def path(self, route: Route) -> str:
        pieces = []
        for pattern in route.parts:
            if isinstance(pattern, RoutePattern):
                pieces.append(
                    re.sub(
                        r"<(?:(\w+):)?(\w+)>",
                        lambda m: self.segment(m.group(1) or "str", m.group(2)),
                        str(pattern),
                    )
                )
            elif isinstance(pattern, RegexPattern):
                regex = str(pattern).removeprefix("^").removesuffix("$")

                def group(match: re.Match) -> str:
                    body = match.group(2)
                    if re.fullmatch(r"[\w|]+", body) and self.rng.random() < 0.7:
                        return self.rng.choice(body.split("|"))
                    return quote(self.text(), safe="/")

                pieces.append(re.sub(r"\(\?P<(\w+)>([^)]*)\)", group, regex))
        return "/" + "".join(pieces)

    def query(self) -> str:
        pairs = []
        for _ in range(self.rng.choice([0, 0, 1, 2, 3, 5])):
            name = self.rng.choice(QUERY_NAMES) if self.rng.random() < 0.85 else self.text()
            pairs.append((name, self.value_for(name)))
        return urlencode(pairs)

    def form(self, route_name: str) -> dict[str, object]:
        names = FORM_FIELDS.get(route_name) or (ADMIN_FORM_FIELDS if route_name.startswith("admin:") else [])
        data: dict[str, object] = {}
        for name in names:
            if self.rng.random() < 0.8:
                data[name] = self.value_for(name)
        if "events" in data and self.rng.random() < 0.5:
            data["events"] = self.rng.sample(["completed", "failed", "stalled", "nonsense", ""], 2)
        if "file" in names and self.rng.random() < 0.7:
            data["file"] = SimpleUploadedFile(
                self.rng.choice(["in.jsonl", "x.txt", "ü.jsonl"]), self.upload()
            )
        for _ in range(self.rng.choice([0, 0, 1, 3])):
            data[self.text()[:40] or "x"] = self.text()
        return data

    def upload(self) -> bytes:
        line = {
            "custom_id": self.rng.choice(["r1", "", "x" * 100]),
            "method": "POST",
            "url": self.rng.choice(["/v1/chat/completions", "/v1/embeddings", "/nope"]),
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        }
        return self.rng.choice(
            [
                (json.dumps(line) + "\n").encode() * self.rng.randint(1, 3),
                b"",
                b"\x00\xff\xfe garbage",
                b"{not json}\n",
                "ü💥\n".encode(),
            ]
        )

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.rng.random() < 0.3:
            headers["HTTP_HX_REQUEST"] = "true"
            headers["HTTP_HX_TARGET"] = self.rng.choice(
                ["summary", "batch-table", "file-preview", self.text()]
            )
            if self.rng.random() < 0.5:
                headers["HTTP_HX_CURRENT_URL"] = self.rng.choice(
                    ["http://testserver/?status=failed", self.text()]
                )
        if self.rng.random() < 0.1:
            headers["HTTP_AUTHORIZATION"] = self.rng.choice(["Bearer " + self.text(), self.text()])
        if self.rng.random() < 0.05:
            headers["HTTP_ACCEPT_LANGUAGE"] = self.text()
        return headers


def _no_external_hosts(monkeypatch) -> list[str]:
    """Any attempt to resolve a host other than loopback is refused and remembered."""
    refused: list[str] = []
    original = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            refused.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"the fault suite refuses to resolve {name!r}")
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    return refused


def _world(simulator, monkeypatch) -> dict[str, list[str]]:
    """Connections to the simulator and to a closed port, batches synced from the simulator and
    made by hand, a channel and a failed delivery: something real behind many of the random ids."""
    monkeypatch.setenv("SIMULATOR_TEST_API_KEY", "sk-test-fuzz")
    monkeypatch.setenv("CLOSED_PORT_API_KEY", "sk-test-closed")
    simulated = Connection.objects.create(
        name="simulated", base_url=simulator.base_url, api_key_env="SIMULATOR_TEST_API_KEY"
    )
    closed = Connection.objects.create(
        name="closed", base_url=f"http://127.0.0.1:{free_port()}/v1", api_key_env="CLOSED_PORT_API_KEY"
    )
    sync.full_sync(simulated)
    connections.environment_connection()
    for status in ("in_progress", "completed", "failed", "cancelling"):
        make_batch(closed, status=status, output_file_id="file-out1", error_file_id="file-err1")
        make_batch(None, status=status, output_file_id="file-out2")
    # Channels' URLs are stored encrypted with it.
    monkeypatch.setattr(settings, "DASHBOARD_ENCRYPTION_KEY", Fernet.generate_key().decode())
    channel = Channel.objects.create(name="team", kind=Channel.Kind.WEBHOOK, url="http://127.0.0.1:9/hook")
    Delivery.objects.create(
        channel=channel,
        batch=Batch.objects.filter(connection=simulated).first(),
        event="completed",
        state=Delivery.State.FAILED,
        next_attempt_at=timezone.now(),
        created_at=timezone.now(),
    )
    return {
        "status": list(KNOWN_STATUSES),
        "connection": ["simulated", "closed", "default", str(simulated.pk)],
        "kind": ["input", "output", "error", "webhook", "slack", "email"],
        # The webhook's connection reference: a name, an id, digits int() refuses, a huge number.
        "ref": ["simulated", "closed", str(closed.pk), "²", "١٢", "9" * 30],
        "sort": ["created", "-created", "status", "progress", "-progress"],
        "endpoint": ["/v1/chat/completions", "/v1/embeddings"],
        "completion_window": ["24h"],
        "provider": ["openai", "azure"],
        "key_storage": ["encrypted", "env"],
        "base_url": [simulator.base_url, f"http://127.0.0.1:{free_port()}/v1", "ftp://127.0.0.1/", "http://"],
        "refresh_interval": ["5", "15", "4", "-3"],
        "full_sync_interval": ["60", "300", "59"],
        "url": ["http://127.0.0.1:9/hook", "https://localhost/x", "javascript:alert(1)"],
        "email": ["ops@example.com", "not-an-email"],
        "next": ["/", "/batches/1/", "https://evil.example/", "//evil.example"],
        "from": ["row", "detail"],
        "again": ["1", "0"],
        "action": ["delete_selected", "cancel", "nope"],
        "page": ["1", "2", "last", "0"],
        "size": ["10", "50", "100", "7"],
        "created_from": ["2025-01-01", "2030-12-31"],
        "q": ["batch_", "evals", "ana"],
        "meta": ["project=evals", "owner=ana"],
        "enabled": ["on", "off"],
        "post": ["yes"],
    }


def test_a_thousand_random_requests_never_get_a_5xx(transactional_db, start_simulator, settings, monkeypatch):
    simulator = start_simulator(batches=60, seed=3)
    refused_hosts = _no_external_hosts(monkeypatch)
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    settings.OPENAI_API_KEY = "sk-test-environment"
    settings.OPENAI_MAX_RETRIES = 0
    settings.OPENAI_READ_TIMEOUT = 5.0
    webhook_secret = "whsec_" + base64.b64encode(b"fault-suite-webhook-secret-0001").decode()
    settings.OPENAI_WEBHOOK_SECRET = webhook_secret
    settings.METRICS_TOKEN = "fault-suite-metrics-token"
    queued: list[tuple] = []
    monkeypatch.setattr(alert_tasks.refresh_batch_now, "delay", lambda *args: queued.append(args))

    values = _world(simulator, monkeypatch)
    ids = sorted(
        {*Batch.objects.values_list("pk", flat=True), *Connection.objects.values_list("pk", flat=True)}
    )
    rng = random.Random(SEED)
    fuzz = Fuzzer(rng, ids, values)
    routes = _routes()
    # Django's admin has most of the patterns; the dashboard's own pages get most of the requests.
    own = [route for route in routes if not route.name.startswith("admin:")]
    django_admin = [route for route in routes if route.name.startswith("admin:")]

    users = {"admin": _user("admin", 0), "viewer": _user("viewer", 0)}
    clients: list[tuple[str, Client]] = []
    for who in ("admin", "viewer", "anonymous"):
        for strict in (False, True):
            client = Client(enforce_csrf_checks=strict, raise_request_exception=False)
            if who in users:
                client.force_login(users[who])
            clients.append((f"{who}{' (CSRF enforced)' if strict else ''}", client))

    errors: list[str] = []

    def remember(sender, request=None, **kwargs):
        errors.append(traceback.format_exc(limit=-14))

    got_request_exception.connect(remember)
    failures: list[str] = []
    upstream: list[str] = []
    by_design: dict[str, int] = {}
    statuses: dict[int, int] = {}
    started = time.monotonic()
    try:
        for number in range(REQUESTS):
            who, client = rng.choice(clients)
            route = rng.choice(own if rng.random() < 0.7 else django_admin)
            # Now and then a path that matches no pattern at all.
            path = "/" + quote(fuzz.text(), safe="/%") if rng.random() < 0.04 else fuzz.path(route)
            query = fuzz.query()
            url = f"{path}?{query}" if query else path
            headers = fuzz.headers()
            method = rng.choices(["GET", "POST", "HEAD", "PUT", "DELETE"], [55, 38, 3, 2, 2])[0]
            errors.clear()
            if method == "POST":
                response = _post(client, fuzz, rng, route, url, headers, webhook_secret)
            elif method == "GET":
                response = client.get(url, **headers)
            else:
                response = client.generic(method, url, **headers)
            if response.streaming:
                try:
                    b"".join(response.streaming_content)
                except Exception:
                    errors.append(traceback.format_exc(limit=-14))
                    response.status_code = 500
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            designed = [
                name
                for name, (status, path_pattern) in BY_DESIGN.items()
                if response.status_code == status and path_pattern.search(path)
            ]
            if designed:
                by_design[designed[0]] = by_design.get(designed[0], 0) + 1
            elif response.status_code >= 500:
                detail = errors[-1] if errors else response.content[:300].decode(errors="replace")
                known = [
                    name
                    for name, (url_pattern, error_pattern) in KNOWN_UPSTREAM.items()
                    if url_pattern.search(url) and error_pattern.search(detail)
                ]
                report = f"#{number} {who} {method} {url[:300]!r} -> {response.status_code}"
                if known:
                    upstream.append(f"{report} ({known[0]})")
                else:
                    failures.append(f"{report}\n{detail}")
            # A random post may have signed this client out (logout, a password change) or even
            # deleted its user through Django's admin: sign it in again, as a new user if need be.
            name = who.split(" ")[0]
            if name in users and client.session.get("_auth_user_id") is None:
                if not type(users[name]).objects.filter(pk=users[name].pk).exists():
                    users[name] = _user(name, number)
                client.force_login(users[name])
    finally:
        got_request_exception.disconnect(remember)
    elapsed = time.monotonic() - started
    print(f"{REQUESTS} random requests in {elapsed:.1f} s; statuses {dict(sorted(statuses.items()))}")
    if by_design:
        print(f"5xx by design: {by_design}")
    for line in upstream:
        print(f"known Django bug, not failed: {line}")
    assert refused_hosts == [], f"requests tried to leave the machine: {sorted(set(refused_hosts))}"
    assert failures == [], f"{len(failures)} requests got a 5xx:\n\n" + "\n\n".join(failures[:20])
    # The run reached past the sign-in and CSRF checks, into the views and the forms.
    assert statuses.get(200, 0) > REQUESTS // 20 and statuses.get(302, 0) > 0 and statuses.get(404, 0) > 0


def _user(role: str, generation: int):
    user = make_user(f"fuzz-{role}-{generation}", role=role)
    if role == "admin":  # Django's admin too
        type(user).objects.filter(pk=user.pk).update(is_staff=True, is_superuser=True)
    return user


def _post(client: Client, fuzz: Fuzzer, rng: random.Random, route: Route, url: str, headers, secret: str):
    if route.name == "alerts:openai_webhook":
        body = rng.choice(
            [
                json.dumps({"type": "batch.completed", "data": {"id": fuzz.text()}}).encode(),
                json.dumps({"type": fuzz.text(), "data": fuzz.text()}).encode(),
                json.dumps([1, 2]).encode(),
                fuzz.text().encode(),
                b"\xff\xfe\x00",
            ]
        )
        message_id, timestamp = (
            f"msg_{rng.randrange(10**6)}",
            int(time.time()) + rng.choice([0, 0, -9999, 10**12]),
        )
        if rng.random() < 0.6:
            signed = signed_headers(secret, message_id, min(timestamp, 2**62), body)
        else:
            signed = {
                "webhook-id": fuzz.text(),
                "webhook-timestamp": fuzz.text(),
                "webhook-signature": fuzz.text(),
            }
        for name, value in signed.items():
            headers[f"HTTP_{name.upper().replace('-', '_')}"] = value.replace("\x00", "").replace("\n", "")
        return client.generic("POST", url, body, content_type="application/json", **headers)
    data = fuzz.form(route.name)
    csrf = client.cookies.get(settings.CSRF_COOKIE_NAME)
    if client.handler.enforce_csrf_checks and rng.random() < 0.6:
        if csrf is None:
            client.get("/login/")
            csrf = client.cookies.get(settings.CSRF_COOKIE_NAME)
        if csrf is not None:
            data["csrfmiddlewaretoken"] = csrf.value if rng.random() < 0.85 else fuzz.text()
    shape = rng.random()
    if shape < 0.75:
        return client.post(url, data, **headers)
    if shape < 0.85:
        plain = {k: v for k, v in data.items() if isinstance(v, str)}
        return client.post(url, urlencode(plain), content_type="application/x-www-form-urlencoded", **headers)
    if shape < 0.93:
        return client.post(url, fuzz.text().encode(), content_type="application/json", **headers)
    return client.post(url, bytes(rng.randrange(256) for _ in range(64)), content_type=fuzz.text(), **headers)


# --- the 5xx the random requests found, each pinned by a test of its own -----------------------


def test_a_cancel_whose_next_is_a_bare_word_redirects_there_rather_than_failing(client, db, monkeypatch):
    # redirect("status") took the word for a view name: NoReverseMatch, a 500.
    batch = make_batch(status="completed")
    client.force_login(_user("operator", 0))
    response = client.post(f"/batches/{batch.pk}/cancel/", {"next": "status"})
    assert response.status_code == 302 and response["Location"] == "status"


def test_a_signed_webhook_naming_a_connection_by_a_digit_int_refuses_is_a_404(client, db, settings):
    # "²".isdigit() is true, and int("²") raised ValueError: a 500.
    settings.OPENAI_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"fault-suite-webhook-secret-0002").decode()
    body = json.dumps({"type": "batch.completed", "data": {"id": "batch_x"}}).encode()
    headers = signed_headers(settings.OPENAI_WEBHOOK_SECRET, "msg_1", int(time.time()), body)
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    response = client.post("/webhooks/openai/%C2%B2/", body, content_type="application/json", **extra)
    assert response.status_code == 404


def test_a_sign_in_with_a_username_too_long_for_the_lockout_records_is_refused_not_a_500(client, db):
    # Django does not enforce the username's max_length; django-axes then stored the whole name in a
    # 255-character column, which PostgreSQL refused: a 500 (SQLite stores it anyway).
    from axes.models import AccessAttempt

    for path in ("/login/", "/admin/login/"):
        response = client.post(path, {"username": "é" * 300, "password": "wrong"})
        assert response.status_code == 200 and "username" in response.content.decode().lower()
    assert {len(a.username) for a in AccessAttempt.objects.all()} == {255}


def test_a_signed_webhook_naming_a_connection_with_a_nul_byte_is_a_404(client, db, settings):
    # PostgreSQL refuses a NUL byte in a query: DataError, a 500.
    settings.OPENAI_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"fault-suite-webhook-secret-0003").decode()
    body = json.dumps({"type": "batch.completed", "data": {"id": "batch_x"}}).encode()
    headers = signed_headers(settings.OPENAI_WEBHOOK_SECRET, "msg_2", int(time.time()), body)
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    response = client.post("/webhooks/openai/a%00b/", body, content_type="application/json", **extra)
    assert response.status_code == 404


def test_the_admin_offers_no_form_to_add_a_webhook_receipt(client, db):
    # Every field of the form was read-only, so saving it inserted a row without received_at: a 500.
    client.force_login(_user("admin", 0))
    assert client.get("/admin/alerts/webhookreceipt/add/").status_code == 403
    assert client.post("/admin/alerts/webhookreceipt/add/", {}).status_code == 403
