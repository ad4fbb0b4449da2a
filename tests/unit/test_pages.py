import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.roles import OPERATOR, set_role
from batches.models import Batch
from tests.support.factories import make_batch, make_connection
from tests.support.pollers import forget_pollers

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(client):
    user = User.objects.create_user("member", password="pw-member-1")
    client.force_login(user)
    return user


def test_it_sends_an_anonymous_visitor_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_it_lists_batches_from_the_database(client, member):
    batch = make_batch(batch_id="batch_visible_one", metadata={"run": "nightly"})
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "batch_visible_one" in body
    assert "run=nightly" in body
    # Its row takes part in the page's one poll, with the version it shows.
    assert re.search(rf'id="batch-{batch.pk}"[^>]* data-live="{batch.pk}" data-version="[0-9a-f]+"', body)
    assert 'id="live-poll"' in body


def test_a_terminal_row_renders_without_its_polling_trigger(client, member):
    done = make_batch(status="completed", completed_requests=100, failed_requests=0)
    response = client.get(f"/batches/{done.pk}/row/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "hx-trigger" not in response.content.decode()


def test_an_active_row_keeps_polling(client, member):
    running = make_batch(status="in_progress")
    response = client.get(f"/batches/{running.pk}/row/", HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 5s"' in response.content.decode()


def _row_fragment(client, pk: int) -> str:
    # The row's own poll, kept working as the page poll's baseline (benchmarks/bench_poll_load.py).
    return client.get(f"/batches/{pk}/row/", HTTP_HX_REQUEST="true").content.decode()


def _polled_url(body: str, pk: int) -> str:
    match = re.search(rf'hx-get="(/batches/{pk}/row/\?v=[0-9a-f]+)"', body)
    assert match, body
    return match.group(1)


def test_an_unchanged_row_answers_204_and_a_changed_one_renders(client, member):
    running = make_batch(status="in_progress", total_requests=100, completed_requests=10, failed_requests=0)
    polled = _polled_url(_row_fragment(client, running.pk), running.pk)
    unchanged = client.get(polled, HTTP_HX_REQUEST="true")
    assert unchanged.status_code == 204
    assert unchanged.content == b""

    Batch.objects.filter(pk=running.pk).update(completed_requests=11)
    changed = client.get(polled, HTTP_HX_REQUEST="true")
    assert changed.status_code == 200
    assert ">11</span> done" in changed.content.decode()
    # The new row carries the new version, which is unchanged on the next poll.
    assert (
        client.get(_polled_url(changed.content.decode(), running.pk), HTTP_HX_REQUEST="true").status_code
        == 204
    )


def test_a_row_polled_with_a_stale_or_garbage_version_renders(client, member):
    running = make_batch(status="in_progress")
    for version in ("", "0123456789abcdef", "x" * 500, "\x00"):
        response = client.get(f"/batches/{running.pk}/row/", {"v": version}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert f'id="batch-{running.pk}"' in response.content.decode()


def test_a_row_renders_again_when_each_thing_it_shows_changes(client, member):
    now = timezone.now()
    running = make_batch(
        status="in_progress", total_requests=100, completed_requests=10, last_progress_at=now
    )
    polled = _polled_url(_row_fragment(client, running.pk), running.pk)
    changes = [
        {"last_synced_at": now + timedelta(seconds=15)},
        {"failed_requests": 3},
        {"total_requests": 120},
        {"status": "finalizing"},
        {"listed": False},
        # No request finished for longer than STALLED_AFTER_MINUTES: the row turns stalled.
        {"last_progress_at": now - timedelta(days=1)},
    ]
    for change in changes:
        original = {name: getattr(running, name) for name in change}
        Batch.objects.filter(pk=running.pk).update(**change)
        assert client.get(polled, HTTP_HX_REQUEST="true").status_code == 200, change
        Batch.objects.filter(pk=running.pk).update(**original)
        assert client.get(polled, HTTP_HX_REQUEST="true").status_code == 204, change


def test_a_row_version_is_per_role_so_a_promoted_user_gets_the_cancel_button(client, member):
    running = make_batch(status="in_progress")
    polled = _polled_url(_row_fragment(client, running.pk), running.pk)
    forget_pollers()  # the poll remembers who polls, with their role, for POLL_AUTH_SECONDS
    set_role(member, OPERATOR)
    promoted = client.get(polled, HTTP_HX_REQUEST="true")
    assert promoted.status_code == 200
    assert ">Cancel<" in promoted.content.decode()


def test_a_row_shows_relative_times_the_browser_keeps_ticking(client, member):
    now = timezone.now()
    running = make_batch(
        status="in_progress",
        created_at=now - timedelta(minutes=12, seconds=5),
        last_synced_at=now,
        eta_at=now + timedelta(hours=2, minutes=3, seconds=30),
    )
    body = client.get(f"/batches/{running.pk}/row/", HTTP_HX_REQUEST="true").content.decode()
    assert re.search(r'data-relative="ago">12m [56]s ago</time>', body), body
    assert re.search(r'data-relative="elapsed">12m [56]s</time>', body), body
    assert re.search(r'data-relative="until">in 2h 3m</time>', body), body
    done = make_batch(status="completed", created_at=now - timedelta(hours=1), completed_at=now)
    body = client.get(f"/batches/{done.pk}/row/", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-relative="elapsed"' not in body  # a finished batch's elapsed time is fixed
    assert '<td class="c-elapsed">1h 0m</td>' in body


def test_a_row_renders_with_no_query_beyond_its_own_load(client, member):
    running = make_batch(status="in_progress", metadata={"team": "a"}, eta_at=timezone.now())
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/batches/{running.pk}/row/", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert running.batch_id in body
    assert running.connection.name in body
    assert "team=a" in body
    batch_queries = [query["sql"] for query in queries if "batches_" in query["sql"]]
    assert len(batch_queries) == 1, batch_queries  # no deferred column is read after the row's load


def test_a_batch_with_no_requests_yet_shows_waiting(client, member):
    make_batch(status="validating", total_requests=0, completed_requests=0, failed_requests=0)
    assert "waiting" in client.get("/").content.decode()


def test_it_filters_by_status_connection_and_metadata(client, member):
    other = make_connection("team-b")
    make_batch(batch_id="batch_failed_a", status="failed", metadata={"owner": "ana"})
    make_batch(batch_id="batch_running_b", connection=other, metadata={"owner": "bo"})
    body = client.get("/?status=failed").content.decode()
    assert "batch_failed_a" in body and "batch_running_b" not in body
    body = client.get("/?connection=team-b").content.decode()
    assert "batch_running_b" in body and "batch_failed_a" not in body
    body = client.get("/?meta=owner%3Dbo").content.decode()
    assert "batch_running_b" in body and "batch_failed_a" not in body


def test_it_pages_with_a_cursor(client, member):
    for _ in range(55):
        make_batch()
    first = client.get("/")
    assert first.content.decode().count('class="badge run"') == 50
    cursor = first.context["page"].next_cursor
    second = client.get(f"/?cursor={cursor}")
    assert second.content.decode().count('class="badge run"') == 5
    assert second.context["page"].next_cursor is None


def test_a_garbage_cursor_or_sort_is_ignored_not_a_500(client, member):
    make_batch(batch_id="batch_still_shown")
    response = client.get("/?cursor=%%%notbase64&sort=evil&created_from=yesterday")
    assert response.status_code == 200
    assert "batch_still_shown" in response.content.decode()
    assert "unknown sort" in response.content.decode()


def test_the_detail_page_shows_every_field(client, member):
    batch = make_batch(
        status="failed",
        errors=[{"code": "invalid_json_line", "message": "Line 3 is not JSON", "param": None, "line": 3}],
    )
    body = client.get(f"/batches/{batch.pk}/").content.decode()
    assert batch.batch_id in body
    assert "invalid_json_line" in body and "Line 3 is not JSON" in body


def test_an_unknown_batch_is_a_404(client, member):
    assert client.get("/batches/999999/").status_code == 404
    assert client.get("/batches/999999/row/").status_code == 404


def test_metadata_from_the_api_is_escaped(client, member):
    make_batch(metadata={"note": "<script>alert(1)</script>"})
    body = client.get("/").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;" in body


def test_an_htmx_poll_from_an_expired_session_sends_the_whole_page_to_login(client):
    batch = make_batch()
    response = client.get(
        f"/batches/{batch.pk}/row/",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/?status=failed",
    )
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/login/?next=/")
    assert "<form" not in response.content.decode()


def test_the_list_serves_its_table_and_summary_fragments(client, member):
    make_batch(batch_id="batch_fragment")
    table = client.get("/?status=in_progress", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="batch-table")
    body = table.content.decode()
    assert body.lstrip().startswith('<section id="batch-table"') and "batch_fragment" in body
    assert "<html" not in body
    summary = client.get("/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="summary").content.decode()
    assert summary.lstrip().startswith('<section id="summary"') and "<title>1 running" in summary


def test_the_detail_page_serves_its_live_fragment(client, member):
    batch = make_batch(status="in_progress")
    body = client.get(f"/batches/{batch.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert body.lstrip().startswith('<section id="batch-live"') and "<html" not in body
    # The page polls once for all its cards (batches/views_live.py) while the batch runs, and not after.
    assert f'hx-get="/batches/{batch.pk}/live/?' in client.get(f"/batches/{batch.pk}/").content.decode()
    done = make_batch(status="completed")
    assert 'id="live-poll"' not in client.get(f"/batches/{done.pk}/").content.decode()


def test_the_detail_page_history_card_refreshes_itself_while_the_batch_runs(client, member):
    from batches.models import ProgressSnapshot

    now = timezone.now()
    batch = make_batch(status="in_progress", total_requests=100, completed_requests=10, in_progress_at=now)
    page = client.get(f"/batches/{batch.pk}/").content.decode()
    assert re.search(r'id="batch-history"[^>]*data-live-part="h" data-version="[0-9a-f]+"', page)
    assert "No progress recorded yet." in page
    for minutes, done in ((10, 10), (5, 40), (0, 70)):
        ProgressSnapshot.objects.create(
            batch=batch, taken_at=now - timedelta(minutes=minutes), completed=done, failed=0, total=100
        )
    Batch.objects.filter(pk=batch.pk).update(completed_requests=70)
    fragment = client.get(f"/batches/{batch.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="batch-history")
    body = fragment.content.decode()
    assert body.lstrip().startswith('<section class="card" id="batch-history"') and "<html" not in body
    assert "<svg" in body and "No progress recorded yet." not in body  # the snapshots since the page loaded
    done = make_batch(status="completed")
    assert 'id="live-poll"' not in client.get(f"/batches/{done.pk}/").content.decode()


def test_a_stalled_batch_stands_out(client, member):
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(hours=2)
    make_batch(status="in_progress", in_progress_at=long_ago, last_progress_at=long_ago)
    assert ">stalled<" in client.get("/").content.decode()


def test_the_eta_warns_when_it_passes_the_expiry(client, member):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    batch = make_batch(
        status="in_progress", eta_at=now + timedelta(hours=30), expires_at=now + timedelta(hours=3)
    )
    assert "after expiry" in client.get("/").content.decode()
    assert "will not finish before it expires" in client.get(f"/batches/{batch.pk}/").content.decode()


GARBAGE = [
    "2026-02-31",
    "status",
    "\x00",
    "a\x00b",
    "'",
    '"><script>',
    "%00",
    "9" * 40,
    "-1",
    "null",
    "[]",
    "ü",
    "a" * 3000,
    "1e309",
    "../../etc",
]


@pytest.mark.parametrize(
    "name",
    [
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
        "page",
    ],
)
def test_no_garbage_query_parameter_causes_a_500(client, member, name):
    make_batch()
    for value in GARBAGE:
        for target in ("", "batch-table", "summary"):
            headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target} if target else {}
            response = client.get("/", {name: value}, **headers)
            assert response.status_code == 200, (name, value, target)


def test_the_list_page_costs_a_constant_number_of_queries(client, member, django_assert_max_num_queries):

    for _ in range(60):
        make_batch()
    client.get("/")  # fills the one-minute cache of filter choices
    # Session, user with role, rows, counts per status, connections.
    with django_assert_max_num_queries(5):
        assert client.get("/").status_code == 200
    for _ in range(60):
        make_batch(status="completed")
    with django_assert_max_num_queries(5):
        client.get("/?status=completed&sort=progress")
    batch = make_batch()
    with django_assert_max_num_queries(3):  # session, user with role, the batch
        client.get(f"/batches/{batch.pk}/row/", HTTP_HX_REQUEST="true")
    cache.clear()


def test_without_any_key_the_page_says_how_to_connect_rather_than_unreachable(client, member, settings):
    settings.OPENAI_API_KEY = ""
    body = client.get("/").content.decode()
    assert "No API connection is configured: set OPENAI_API_KEY" in body
    assert "unreachable" not in body


def test_row_urls_are_what_reverse_gives_for_each_batch():
    from django.urls import reverse

    from batches.rows import batch_url

    for pk in (1, 42, 987_654_321, 10**12):
        for name in ("batches:row", "batches:detail", "batches:cancel"):
            assert batch_url(name, pk) == reverse(name, args=[pk])
