"""The dense list's markup: shortened ids, the first metadata pair and "+N", status cards that are the
status filter, rarer filters folded away, and the row's hooks for the finished-batch announcement."""

import html
import re

import pytest

from batches.rows import short_id
from tests.support.factories import make_batch, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(client):
    user = make_user("vera", "viewer")
    client.force_login(user)
    return user


def test_long_ids_are_shortened_in_the_middle_and_short_ones_kept():
    assert short_id("batch_6745a1b2c3d4e5f6a7b8c9d0") == "batch_6745…8c9d0"
    assert short_id("batch_abc123") == "batch_abc123"
    assert short_id("x" * 18) == "x" * 18


def test_a_row_shows_its_first_metadata_pair_and_the_rest_behind_plus_n(client, viewer):
    batch = make_batch(
        batch_id="batch_6745a1b2c3d4e5f6a7b8c9d0", metadata={"project": "evals", "owner": "ana", "run": "7"}
    )
    row = client.get(f"/batches/{batch.pk}/row/", HTTP_HX_REQUEST="true").content.decode()
    # "First" as the database gives the keys back: as sent on SQLite, jsonb's own order on PostgreSQL.
    pairs = [f"{key}={value}" for key, value in type(batch).objects.get(pk=batch.pk).metadata.items()]
    assert f'<span class="chip" title="{pairs[0]}">{pairs[0]}</span>' in row
    assert '<span class="meta-more" tabindex="0">+2' in row
    assert ", ".join(pairs[1:]) in row
    assert f'title="{batch.batch_id}">batch_6745…8c9d0</a>' in row
    assert f'data-copy="{batch.batch_id}"' in row
    assert 'data-announce="batch_6745…8c9d0"' in row and "data-terminal" not in row
    assert '<td class="c-endpoint" title="/v1/chat/completions">chat/completions</td>' in row


def test_a_finished_row_carries_the_terminal_mark_the_announcement_reads(client, viewer):
    batch = make_batch(status="completed")
    row = client.get(f"/batches/{batch.pk}/row/", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-status="completed" data-terminal' in row


def test_the_status_cards_are_the_status_filter_and_a_chosen_one_links_back_to_all(client, viewer):
    make_batch(status="failed")
    page = client.get("/?connection=default").content.decode()
    failed = re.search(r'<a class="status-card[^"]*" href="([^"]*)" data-status="failed"', page)[1]
    assert html.unescape(failed) == "?connection=default&status=failed"
    assert 'type="checkbox" name="status"' not in page  # the cards replaced the checkboxes
    chosen = client.get("/?connection=default&status=failed").content.decode()
    card = re.search(
        r'<a class="status-card[^"]*selected" href="([^"]*)" data-status="failed"([^>]*)>', chosen
    )
    assert html.unescape(card[1]) == "?connection=default" and 'aria-current="true"' in card[2]
    # The filter form keeps the chosen statuses when another filter changes.
    assert '<input type="hidden" name="status" value="failed">' in chosen
    assert 'class="status-card all" href="?connection=default"' in chosen


def test_rarer_filters_are_folded_unless_one_is_set(client, viewer):
    assert '<details class="more-filters">' in client.get("/").content.decode()
    assert '<details class="more-filters" open>' in client.get("/?created_from=2026-01-01").content.decode()
    assert '<details class="more-filters" open>' in client.get("/?sort=progress").content.decode()
