"""What the random-request fault test and the hostile-request unit tests share: the project's routes
walked from the URL resolver, hostile values, the form fields each view reads, the 5xx that are
Django's bugs or sent by design, a world of real objects behind the ids, and a guard that keeps every
request on loopback."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from cryptography.fernet import Fernet
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from alerts.models import Channel, Delivery
from batches import connections, sync
from batches.models import Batch, Connection
from batches.statuses import KNOWN_STATUSES
from tests.conftest import free_port
from tests.support.factories import make_batch, make_user

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


def _user(role: str, generation: int):
    user = make_user(f"fuzz-{role}-{generation}", role=role)
    if role == "admin":  # Django's admin too
        type(user).objects.filter(pk=user.pk).update(is_staff=True, is_superuser=True)
    return user
