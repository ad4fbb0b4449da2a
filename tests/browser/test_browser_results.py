"""Creating a batch from an upload and re-submitting its failures, in a real headless Chromium."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import expect

from batches import sync
from batches.models import Batch, Connection
from tests.browser.conftest import SCREENSHOT_DIR
from tests.conftest import SIMULATOR_KEY_ENV

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stack(start_simulator, live_server, monkeypatch):
    simulator = start_simulator(batches=3, seed=3)
    monkeypatch.setenv(SIMULATOR_KEY_ENV, "sk-test-simulator")
    connection = Connection.objects.create(
        name="simulated", base_url=simulator.base_url, api_key_env=SIMULATOR_KEY_ENV
    )
    Connection.objects.exclude(pk=connection.pk).update(enabled=False)
    user = User.objects.create_user("opal", password="pw-opal-1")
    user.groups.add(Group.objects.get_or_create(name="operator")[0])
    return simulator, connection


def requests_file() -> bytes:
    lines = []
    for i in range(40):
        body: dict = {"model": "gpt-4o-mini"}
        if i % 8 != 5:  # every eighth request lacks its messages and fails when it runs
            body["messages"] = [{"role": "user", "content": f"Name a colour, please ({i})."}]
        lines.append(
            {"custom_id": f"colour-{i:02d}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        )
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def test_an_operator_uploads_a_file_watches_it_run_and_resubmits_its_failures(page, live_server, stack):
    simulator, connection = stack
    page.goto(f"{live_server.url}/login/?next=/batches/new/")
    page.fill("input[name=username]", "opal")
    page.fill("input[name=password]", "pw-opal-1")
    page.click("button[type=submit]")
    page.wait_for_url("**/batches/new/")

    page.select_option("select[name=connection]", label="simulated")
    page.select_option("select[name=endpoint]", "/v1/chat/completions")
    page.fill("textarea[name=metadata]", "project=browser-test")
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "colours.jsonl", "mimeType": "application/jsonl", "buffer": requests_file()}],
    )
    page.get_by_role("button", name="Check, upload and create").click()
    page.wait_for_url(re.compile(r"/batches/\d+/$"))
    batch = Batch.objects.get(connection=connection, metadata__created_by="opal")
    assert page.url.endswith(f"/batches/{batch.pk}/")
    assert "created from 40 requests" in page.inner_text(".messages")
    assert page.inner_text("#batch-live .badge").strip() == "validating"

    # Halfway through its run, as the sync would see it: the open page moves on by itself.
    plan = simulator.control.get(f"/_sim/plan/{batch.batch_id}").json()
    simulator.advance((plan["in_progress_at"] + plan["done_at"]) / 2 - simulator.state()["sim_now"])
    sync.refresh_batch(connection, batch.batch_id)
    # expect() polls from Python: the Content-Security-Policy forbids the eval wait_for_function needs.
    expect(page.locator("#batch-live .badge")).to_have_text("in progress", timeout=15000)
    assert int(page.inner_text("#batch-live .n-completed")) > 0

    simulator.advance(plan["final_at"] - simulator.state()["sim_now"] + 1)
    sync.refresh_batch(connection, batch.batch_id)
    page.reload()
    assert page.inner_text("#batch-live .badge").strip() == "completed"
    triage = page.locator("#batch-results table.triage")
    triage.wait_for()
    assert "missing_required_parameter" in triage.inner_text()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.locator("#batch-results").screenshot(path=str(SCREENSHOT_DIR / "results.png"))
    page.goto(f"{live_server.url}/batches/{batch.pk}/files/error/")
    page.screenshot(path=str(SCREENSHOT_DIR / "error-file.png"), full_page=True)
    page.go_back()
    page.locator("#batch-results table.triage").wait_for()

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Re-submit failures").click()
    page.wait_for_url(lambda url: not url.endswith(f"/batches/{batch.pk}/"))
    retry = Batch.objects.get(connection=connection, metadata__retry_of=batch.batch_id)
    assert page.url.endswith(f"/batches/{retry.pk}/")
    assert "Re-submitted" in page.inner_text(".messages")
    page.locator("#batch-results .retry-link").wait_for()
    assert batch.batch_id in page.inner_text("#batch-results .retry-link")
