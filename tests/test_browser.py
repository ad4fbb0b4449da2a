"""The pages in a real headless Chromium against Django's live server."""

import pytest
from django.contrib.auth.models import User

from tests.factories import make_batch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server) -> None:
    User.objects.create_user("viewer", password="pw-viewer-1")
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", "pw-viewer-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_it_signs_in_and_shows_the_batch_list(page, live_server):
    make_batch(batch_id="batch_in_the_browser", status="in_progress")
    sign_in(page, live_server)
    row = page.locator("tr", has_text="batch_in_the_browser")
    assert row.count() == 1
    assert "in progress" in row.inner_text()
    # htmx came from django-htmx's bundled copy and is running.
    assert page.evaluate("typeof htmx !== 'undefined' && htmx.version.startsWith('2')")


def test_a_running_row_updates_itself_without_a_reload(page, live_server):
    batch = make_batch(batch_id="batch_moving", status="in_progress", completed_requests=10)
    sign_in(page, live_server)
    row = page.locator(f"#batch-{batch.pk}")
    assert "10 done" in row.inner_text()
    type(batch).objects.filter(pk=batch.pk).update(completed_requests=77, status="finalizing")
    page.wait_for_function(
        f"document.querySelector('#batch-{batch.pk}').innerText.includes('77 done')", timeout=15000
    )
    assert "finalizing" in page.locator(f"#batch-{batch.pk}").inner_text()


def test_filters_live_in_the_url_and_the_back_button_works(page, live_server):
    make_batch(batch_id="batch_failed_one", status="failed")
    make_batch(batch_id="batch_running_one", status="in_progress")
    sign_in(page, live_server)
    page.check("input[name=status][value=failed]")
    page.wait_for_url("**/?*status=failed*")
    page.wait_for_function("!document.body.innerText.includes('batch_running_one')")
    assert "batch_failed_one" in page.inner_text("#batch-table")
    page.go_back()
    page.wait_for_function("document.body.innerText.includes('batch_running_one')")
