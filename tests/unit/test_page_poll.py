"""The page poll (batches/views_live.py): one request per open page, answered with only what changed."""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from accounts.roles import OPERATOR, set_role
from batches import live, writer
from batches.api.objects import ApiBatch
from batches.models import Batch
from dashboard.shared_redis import client as redis_client
from tests.support.factories import make_batch, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(client):
    user = make_user("member")
    client.force_login(user)
    return user


class Page:
    """What a browser holds of a page: its poll URL and the versions of what it shows."""

    def __init__(self, body: str) -> None:
        self.poll_url = ""
        self.rows: dict[str, str] = {}
        self.parts: dict[str, str] = {}
        self.take(body)

    def take(self, body: str) -> None:
        """Apply an answer as htmx does: a new poll element, and the out-of-band fragments."""
        found = re.search(r'id="live-poll" hidden hx-get="([^"]+)"', body)
        if found:
            self.poll_url = html.unescape(found.group(1))
        for tag in re.findall(r'<tr id="batch-(\d+)"[^>]*>', body):
            self.rows.pop(tag, None)
        self.rows.update(dict(re.findall(r'data-live="(\d+)" data-version="([0-9a-f]+)"', body)))
        self.parts.update(dict(re.findall(r'data-live-part="(\w)" data-version="([0-9a-f]*)"', body)))

    def poll(self, client, **headers):
        params = {"rows": ",".join(f"{pk}.{version}" for pk, version in self.rows.items()), **self.parts}
        # As htmx sends them: added to the poll URL's own query string.
        return client.get(f"{self.poll_url}&{urlencode(params)}", HTTP_HX_REQUEST="true", **headers)


def open_list(client) -> Page:
    return Page(client.get("/").content.decode())


def observe(batch: Batch, **changes) -> None:
    """The sync sees the batch changed in the API: written as the writer writes, counted on commit."""
    counts = {
        "total": changes.pop("total", batch.total_requests),
        "completed": changes.pop("completed", batch.completed_requests),
        "failed": changes.pop("failed", batch.failed_requests),
    }
    raw = {
        "id": batch.batch_id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "status": changes.pop("status", batch.status),
        "created_at": int(batch.created_at.timestamp()),
        "request_counts": counts,
        "completion_window": "24h",
        "input_file_id": batch.input_file_id,
    }
    writer.write_page(batch.connection_id, [ApiBatch.from_json(raw)], timezone.now(), price=writer.unpriced)


def test_the_list_polls_once_for_the_whole_page_and_its_rows_not_at_all(client, member):
    running = [make_batch(status="in_progress") for _ in range(3)]
    body = client.get("/").content.decode()
    assert 'hx-trigger="every' not in body  # neither the rows nor the summary poll on their own
    assert 'id="live-poll" hidden hx-get="/live/?' in body and 'data-poll-seconds="5"' in body
    page = Page(body)
    assert set(page.rows) == {str(batch.pk) for batch in running}
    assert "s" in page.parts


def test_an_unchanged_page_answers_204_from_one_redis_lookup_without_a_query(
    client, member, django_assert_max_num_queries
):
    make_batch(status="in_progress")
    page = open_list(client)
    page.poll(client)  # the first poll checks who asks in full (accounts.polls) and remembers it
    with django_assert_max_num_queries(1):  # the session, read on every request
        answer = page.poll(client)
    assert answer.status_code == 204 and answer.content == b""


def test_a_changed_row_comes_alone_and_the_next_poll_is_204_again(
    client, member, django_capture_on_commit_callbacks
):
    running = [make_batch(status="in_progress", completed_requests=10, failed_requests=0) for _ in range(3)]
    page = open_list(client)
    with django_capture_on_commit_callbacks(execute=True):
        observe(running[1], completed=20)
    answer = page.poll(client)
    body = answer.content.decode()
    assert answer.status_code == 200
    assert re.findall(r'<tr id="batch-(\d+)"', body) == [str(running[1].pk)]
    assert 'hx-swap-oob="true"' in body and ">20</span> done" in body
    page.take(body)
    assert page.poll(client).status_code == 204


def test_a_finished_row_leaves_the_poll_which_slows_down(client, member, django_capture_on_commit_callbacks):
    running = make_batch(status="in_progress")
    page = open_list(client)
    with django_capture_on_commit_callbacks(execute=True):
        observe(running, status="completed", completed=98)
    body = page.poll(client).content.decode()
    assert f'<tr id="batch-{running.pk}"' in body and f'data-live="{running.pk}"' not in body
    assert 'data-poll-seconds="30"' in body
    page.take(body)
    assert page.rows == {}


def test_the_summary_and_the_title_follow_a_change_of_status(
    client, member, django_capture_on_commit_callbacks
):
    running = make_batch(status="in_progress")
    page = open_list(client)
    with django_capture_on_commit_callbacks(execute=True):
        observe(running, status="failed")
    body = page.poll(client).content.decode()
    assert re.search(r'<section id="summary"[^>]*hx-swap-oob="true"', body)
    assert "<title>1 failed · Batch dashboard</title>" in body


def test_a_new_batch_is_put_on_top_of_the_table(client, member, django_capture_on_commit_callbacks):
    make_batch(status="in_progress", created_at=timezone.now() - timedelta(hours=1))
    page = open_list(client)
    newer = make_batch(status="validating", created_at=timezone.now())
    live._bump_now(newer.connection_id)
    body = page.poll(client).content.decode()
    assert '<tbody hx-swap-oob="afterbegin:#batch-table tbody">' in body
    assert f'<tr id="batch-{newer.pk}"' in body and f"first={newer.pk}" in body


def test_a_first_row_that_leaves_the_filter_keeps_the_page(
    client, member, django_capture_on_commit_callbacks
):
    older = make_batch(status="in_progress", created_at=timezone.now() - timedelta(hours=1))
    newest = make_batch(status="in_progress", created_at=timezone.now())
    page = Page(client.get("/?status=in_progress").content.decode())
    assert f"first={newest.pk}" in page.poll_url
    with django_capture_on_commit_callbacks(execute=True):
        observe(newest, status="cancelling")
    body = page.poll(client).content.decode()
    assert "afterbegin" not in body
    assert f'<tr id="batch-{newest.pk}"' in body and "cancelling" in body  # updated where it stands
    assert f'<tr id="batch-{older.pk}"' not in body


def test_the_token_is_compared_again_after_its_age_limit(client, member, settings, monkeypatch):
    """What only the clock changes (a batch turning stalled) is caught within LIVE_RECHECK_SECONDS."""
    make_batch(status="in_progress")
    page = open_list(client)
    later = time.time() + settings.LIVE_RECHECK_SECONDS + 1
    monkeypatch.setattr("batches.views_live.time.time", lambda: later)
    answer = page.poll(client)
    assert answer.status_code == 200 and 'id="live-poll"' in answer.content.decode()


def test_a_garbled_poll_is_answered_with_the_page_state_not_an_error(client, member):
    make_batch(status="in_progress")
    garbled = (
        "rows=x.y,..,1",
        "c=%00&t=-5&w=;drop",
        "first=abc&rows=" + "9" * 40 + ".ab",
        # Digits int() refuses: a superscript, more than 4,300 of them.
        "first=%C2%B2&t=%C2%B2&w=%C2%B2&rows=%C2%B2.ab",
        "first=" + "9" * 5000 + "&t=" + "9" * 5000 + "&rows=" + "9" * 5000 + ".ab",
        "status=%ff%fe&rows=%&w=all&&&=&c",
    )
    for query in garbled:
        assert client.get(f"/live/?{query}", HTTP_HX_REQUEST="true").status_code == 200, query
    assert client.get("/batches/1/live/?first=%C2%B2", HTTP_HX_REQUEST="true").status_code in (200, 404)


def test_a_poll_with_more_fields_than_django_parses_is_a_client_error(client, member, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    answer = client.get("/live/?" + "&".join(f"f{n}=1" for n in range(11)), HTTP_HX_REQUEST="true")
    assert answer.status_code == 400


def test_an_expired_session_sends_the_page_to_the_login(client, member):
    make_batch(status="in_progress")
    page = open_list(client)
    client.logout()
    answer = page.poll(client, HTTP_HX_CURRENT_URL="http://testserver/?status=in_progress")
    assert answer.status_code == 200
    assert answer["HX-Redirect"].startswith("/login/?next=/")


def test_a_cached_row_carries_the_asking_users_own_form_token(
    client, member, django_capture_on_commit_callbacks
):
    running = make_batch(status="in_progress", completed_requests=1, failed_requests=0)
    set_role(member, OPERATOR)
    page = open_list(client)
    with django_capture_on_commit_callbacks(execute=True):
        observe(running, completed=5)
    body = page.poll(client, HTTP_HX_CURRENT_URL="http://testserver/?q=a%22b").content.decode()
    token = client.cookies["csrftoken"].value
    assert re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1) != "LIVECSRFSLOTQ7X"
    assert "LIVE" not in body.replace("live", "")
    assert 'name="next" value="/?q=a%22b"' in body
    assert token


def test_the_detail_page_polls_once_for_its_cards_until_the_batch_finishes(
    client, member, django_capture_on_commit_callbacks
):
    running = make_batch(status="in_progress", completed_requests=10, failed_requests=0)
    page = Page(client.get(f"/batches/{running.pk}/").content.decode())
    assert page.poll_url.startswith(f"/batches/{running.pk}/live/?")
    assert page.poll(client).status_code == 204
    with django_capture_on_commit_callbacks(execute=True):
        observe(running, completed=30)
    body = page.poll(client).content.decode()
    assert re.search(r'<section id="batch-live"[^>]*hx-swap-oob="true"', body)
    assert 'id="batch-history"' in body and 'id="live-poll"' in body
    page.take(body)
    with django_capture_on_commit_callbacks(execute=True):
        observe(running, status="completed", completed=98)
    body = page.poll(client).content.decode()
    assert 'data-status="completed"' in body and 'id="live-poll"' not in body  # the poll stops


def test_a_poll_marks_the_connections_it_shows_as_watched_for_a_while(client, member, settings):
    batch = make_batch(status="in_progress")
    assert not live.is_watched(batch.connection_id)
    page = open_list(client)
    page.poll(client)
    assert live.is_watched(batch.connection_id)
    left = redis_client().ttl(f"{live.WATCH_PREFIX}{live.EVERY_CONNECTION}")
    assert 0 < left <= settings.LIVE_WATCH_SECONDS
    filtered = Page(client.get(f"/?connection={batch.connection.name}").content.decode())
    assert f"w={batch.connection_id}" in filtered.poll_url


def test_the_writer_counts_only_changes_a_page_can_show(django_capture_on_commit_callbacks):
    batch = make_batch(status="in_progress", completed_requests=10, failed_requests=0)
    observe(batch, completed=10)  # the stored raw differs from the API's: written as a change
    before = live.read_token()
    with django_capture_on_commit_callbacks(execute=True):
        observe(Batch.objects.get(pk=batch.pk), completed=10)
    assert live.read_token() == before  # only last_synced_at moved
    with django_capture_on_commit_callbacks(execute=True):
        observe(Batch.objects.get(pk=batch.pk), completed=11)
    assert live.read_token() != before


def test_the_answer_says_to_poll_again_just_after_the_next_refresh(client, member):
    batch = make_batch(status="in_progress")
    page = open_list(client)
    assert page.poll(client)["X-Live-Poll-In"] == "5000"  # nothing known of the refresh: the interval
    live.record_next_refresh(batch.connection_id, time.time() + 2)
    answer = page.poll(client)
    assert answer.status_code == 204
    # 2 s, 1.5 s for beat's dispatcher to start the refresh and for it to land, and up to two more to
    # spread the pages out (never past the interval)
    assert 3000 <= int(answer["X-Live-Poll-In"]) <= 5000
    live.record_next_refresh(batch.connection_id, time.time() + 60)  # an idle connection's next refresh
    assert page.poll(client)["X-Live-Poll-In"] == "5000"


def test_while_one_poll_works_out_a_changed_page_the_others_answer_from_the_kept_one_and_come_back_soon(
    client, member, django_capture_on_commit_callbacks, monkeypatch
):
    """A change must not make every tab polling at that moment run the page's queries (the tail of
    the answer times under load): one does, the others answer from the state kept for the older
    token, carrying that token, so that they ask again within a couple of seconds."""
    running = [make_batch(status="in_progress", completed_requests=1, failed_requests=0) for _ in range(2)]
    page = open_list(client)
    with django_capture_on_commit_callbacks(execute=True):
        observe(running[0], completed=2)
    page.take(page.poll(client).content.decode())  # works out the state for this token, and keeps it
    kept_token = re.search(r"[?&]c=([^&]*)", page.poll_url).group(1)
    with django_capture_on_commit_callbacks(execute=True):
        observe(running[1], completed=3)
    # Another poll is working out the new state: it holds the page's busy mark.
    monkeypatch.setattr("batches.views_live._claim", lambda key: False)
    answer = page.poll(client)
    body = answer.content.decode()
    assert answer.status_code == 200 and '<tr id="batch-' not in body
    assert f"c={kept_token}&" in html.unescape(body)
    assert 1000 <= int(answer["X-Live-Poll-In"]) <= 2000
    page.take(body)
    monkeypatch.undo()  # that poll is done (or its mark lapsed)
    body = page.poll(client).content.decode()
    assert re.findall(r'<tr id="batch-(\d+)"', body) == [str(running[1].pk)]
    assert f"c={kept_token}&" not in html.unescape(body)


def test_a_page_state_is_worked_out_by_one_poll_and_read_by_the_next_with_the_token(
    client, member, django_assert_max_num_queries
):
    """The second tab of a page reads the state the first one worked out, in the same Redis round
    trip as the change token: no query but the session's."""
    make_batch(status="in_progress")
    page = open_list(client)
    stale = page.poll_url.replace("&c=", "&c=outdated") if "&c=" in page.poll_url else page.poll_url
    first = Page(client.get("/").content.decode())
    first.poll_url = stale
    first.poll(client)  # the first tab: its poller is checked in full, and the page's state worked out
    second = Page(client.get("/").content.decode())
    second.poll_url = stale
    with django_assert_max_num_queries(1):
        answer = second.poll(client)
    assert answer.status_code == 200 and 'id="live-poll"' in answer.content.decode()
    assert redis_client().keys("batch-dashboard:live-page:*")


def test_the_poll_element_is_the_templates_own_render_with_its_url_escaped(monkeypatch):
    """The element is rendered once with a stand-in for its URL (views_live._poll_markup): the answer
    must be what rendering the template with the URL gives, quotes and ampersands escaped."""
    from django.http import QueryDict
    from django.template.loader import get_template

    from batches.views_live import poll_element

    monkeypatch.setattr("batches.views_live.time.time", lambda: 1_700_000_000.0)
    query = QueryDict(mutable=True)
    query.setlist("q", ['a"b<c>&d'])
    expected = get_template("batches/_live_poll.html").render(
        {
            "poll_url": "/live/?q=a%22b%3Cc%3E%26d&c=1-2&t=1700000000",
            "poll_seconds": 30,
            "events_url": "/live/events/",
        }
    )
    assert poll_element("/live/", query.urlencode(), "1-2", 30) == expected
    assert "&amp;c=1-2" in expected
