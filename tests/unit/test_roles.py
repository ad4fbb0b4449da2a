"""Every role against every view and action; sign-in, audit and key handling."""

import csv
import io

import pytest
from django.contrib.auth.models import User

from accounts.models import AuditEvent
from batches import connections, sync
from batches.models import Batch, CancelRequest, Connection
from tests.support.factories import make_batch, make_connection, make_user

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "operator", "admin"]


@pytest.fixture
def batch():
    return make_batch(status="in_progress")


def pages(batch, connection):
    """(method, url, lowest role allowed) for every page and action."""
    return [
        ("get", "/", "viewer"),
        ("get", f"/batches/{batch.pk}/", "viewer"),
        ("get", f"/batches/{batch.pk}/row/", "viewer"),
        ("get", f"/batches/{batch.pk}/cancel/", "operator"),
        ("get", "/connections/", "admin"),
        ("get", "/connections/new/", "admin"),
        ("get", f"/connections/{connection.pk}/", "admin"),
        ("post", f"/connections/{connection.pk}/test/", "admin"),
        ("get", "/audit/", "admin"),
        ("get", "/audit.csv", "admin"),
    ]


def result_pages(batch):
    """The results and alerts pages, against a finished batch of the simulator."""
    return [
        ("get", f"/batches/{batch.pk}/results/", "viewer"),
        ("get", f"/batches/{batch.pk}/files/output/", "operator"),
        ("get", f"/batches/{batch.pk}/files/output/download/", "operator"),
        ("get", f"/batches/{batch.pk}/resubmit/", "operator"),
        ("get", "/batches/new/", "operator"),
        ("get", "/alerts/channels/", "viewer"),
        ("get", "/alerts/failures/", "admin"),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_the_results_and_alerts_pages_it_may(
    client, role, simulator_connection, simulator
):
    sync.full_sync(simulator_connection)
    done = Batch.objects.filter(connection=simulator_connection, status="completed").exclude(
        output_file_id=""
    )
    client.force_login(make_user(f"user-{role}", role))
    for method, url, lowest in result_pages(done.first()):
        response = getattr(client, method)(url)
        if ROLES.index(role) >= ROLES.index(lowest):
            assert response.status_code in (200, 302), (role, url, response.status_code)
        else:
            assert response.status_code == 403, (role, url, response.status_code)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_the_pages_it_may(client, role, batch):
    connection = make_connection("team-x")
    client.force_login(make_user(f"user-{role}", role))
    for method, url, lowest in pages(batch, connection):
        response = getattr(client, method)(url)
        allowed = ROLES.index(role) >= ROLES.index(lowest)
        if allowed:
            assert response.status_code in (200, 302), (role, url, response.status_code)
        else:
            assert response.status_code == 403, (role, url, response.status_code)
            assert "Your role does not allow this" in response.content.decode()


def test_anonymous_requests_are_sent_to_the_login(client, batch):
    connection = make_connection("team-x")
    for method, url, _ in pages(batch, connection):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_only_the_public_views_are_open_without_signing_in():
    """LoginRequiredMiddleware signs every view in but those marked @login_not_required: these."""
    from django.urls import URLResolver, get_resolver

    def public(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.app_name != "admin":  # the admin site checks staff itself
                    yield from public(pattern.url_patterns, pattern.namespace or namespace)
            elif not getattr(pattern.callback, "login_required", True):
                yield f"{namespace}:{pattern.name}" if namespace else pattern.name

    assert sorted(public(get_resolver().url_patterns)) == [
        "alerts:metrics",
        "alerts:openai_webhook",
        # The polls check who polls themselves (accounts.polls), without loading the user each time.
        "batches:detail_live",
        "batches:live",
        # The push stream checks its user itself: a 403, never the sign-in page (batches.views_events).
        "batches:live_events",
        "batches:row",
        "login",
        "logout",
    ]


def test_an_anonymous_visitor_is_sent_to_the_admins_own_login_for_admin_pages(client):
    response = client.get("/admin/batches/connection/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/batches/connection/")


def test_a_viewer_sees_no_cancel_button(client, batch):
    client.force_login(make_user("vera", "viewer"))
    assert ">Cancel<" not in client.get("/").content.decode()
    assert ">Cancel<" not in client.get(f"/batches/{batch.pk}/").content.decode()
    client.force_login(make_user("otto", "operator"))
    assert ">Cancel<" in client.get("/").content.decode()


def test_a_viewers_forged_cancel_is_403_and_makes_no_api_call(client, simulator_connection, simulator):
    sync.full_sync(simulator_connection)
    running = Batch.objects.filter(connection=simulator_connection, status="in_progress").first()
    client.force_login(make_user("vera", "viewer"))
    response = client.post(f"/batches/{running.pk}/cancel/", {"from": "row"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    on_api = next(b for b in simulator.batches() if b["id"] == running.batch_id)
    assert on_api["status"] == "in_progress"
    assert not CancelRequest.objects.exists()


def test_a_cancel_is_audited_with_who_and_the_outcome(client, simulator_connection, simulator):
    sync.full_sync(simulator_connection)
    running = Batch.objects.filter(connection=simulator_connection, status="in_progress").first()
    client.force_login(make_user("otto", "operator"))
    client.post(f"/batches/{running.pk}/cancel/", HTTP_HX_REQUEST="true")
    event = AuditEvent.objects.get(action="cancel")
    assert event.actor_name == "otto" and event.succeeded and running.batch_id in event.target


def test_sign_ins_and_failed_sign_ins_are_audited(client):
    make_user("sam", "viewer", password="pw-sam-right-1")
    client.post("/login/", {"username": "sam", "password": "wrong"})
    client.post("/login/", {"username": "sam", "password": "pw-sam-right-1"})
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor_name", "succeeded"))
    assert actions == [("sign_in_failed", "sam", False), ("sign_in", "sam", True)]


def test_repeated_failed_sign_ins_are_locked_out(client):
    make_user("sam", "viewer", password="pw-sam-right-1")
    for _ in range(5):
        client.post("/login/", {"username": "sam", "password": "wrong"})
    response = client.post("/login/", {"username": "sam", "password": "pw-sam-right-1"})
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_audit_log_filters_and_exports_csv(client):
    admin = make_user("ada", "admin")
    client.force_login(admin)
    from accounts import audit

    audit.record("cancel", actor=admin, target="default/batch_1", detail='=HYPERLINK("x")')
    audit.record("connection_update", actor=admin, target="team-x")
    page = client.get("/audit/?action=cancel").content.decode()
    assert "default/batch_1" in page and "team-x" not in page
    response = client.get("/audit.csv?action=cancel")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["at", "actor", "action"]
    assert len(rows) == 2 and rows[1][3] == "default/batch_1"
    assert rows[1][5].startswith("'=")  # a formula is neutralised for spreadsheets


def test_an_admin_adds_a_connection_with_an_encrypted_key_shown_only_by_its_last_4(client, settings):
    from cryptography.fernet import Fernet

    settings.DASHBOARD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    client.force_login(make_user("ada", "admin"))
    response = client.post(
        "/connections/new/",
        {
            "name": "project-b",
            "provider": "openai",
            "base_url": "https://api.example.test/v1",
            "key_storage": "encrypted",
            "api_key": "sk-proj-verysecretvalue1234WXYZ",
            "enabled": "on",
            "refresh_interval": 15,
            "full_sync_interval": 300,
        },
    )
    assert response.status_code == 302
    connection = Connection.objects.get(name="project-b")
    assert "verysecret" not in connection.api_key_encrypted
    assert connections.api_key_for(connection) == "sk-proj-verysecretvalue1234WXYZ"
    listing = client.get("/connections/").content.decode()
    assert "WXYZ" in listing and "verysecretvalue" not in listing
    edit = client.get(f"/connections/{connection.pk}/").content.decode()
    assert "verysecretvalue" not in edit
    assert AuditEvent.objects.filter(action="connection_create", target="project-b").exists()


def test_without_an_encryption_key_a_stored_key_is_refused_with_a_clear_message(client, settings):
    settings.DASHBOARD_ENCRYPTION_KEY = ""
    client.force_login(make_user("ada", "admin"))
    response = client.post(
        "/connections/new/",
        {
            "name": "p",
            "provider": "openai",
            "base_url": "https://api.example.test/v1",
            "key_storage": "encrypted",
            "api_key": "sk-abcdefgh12345678",
            "refresh_interval": 15,
            "full_sync_interval": 300,
        },
    )
    assert response.status_code == 200
    assert "DASHBOARD_ENCRYPTION_KEY is not set" in response.content.decode()
    assert not Connection.objects.filter(name="p").exists()


def test_test_connection_reports_success_or_the_apis_own_error(client, simulator_connection, simulator):
    client.force_login(make_user("ada", "admin"))
    response = client.post(f"/connections/{simulator_connection.pk}/test/", follow=True)
    assert "the API answered" in response.content.decode()
    simulator.set_faults(rate_5xx=1.0)
    simulator_connection.refresh_from_db()
    failed = client.post(f"/connections/{simulator_connection.pk}/test/", follow=True).content.decode()
    assert "the API answered with an error" in failed
    assert [e.succeeded for e in AuditEvent.objects.filter(action="connection_test").order_by("id")] == [
        True,
        False,
    ]


def test_create_user_command_sets_the_role(monkeypatch):
    from django.core.management import call_command

    from accounts.roles import role_of

    monkeypatch.setenv("NEW_USER_PASSWORD", "a-long-enough-password")
    call_command("create_user", "nora", "--role", "operator", "--password-env", "NEW_USER_PASSWORD")
    user = User.objects.get(username="nora")
    assert role_of(user) == "operator" and user.check_password("a-long-enough-password")
