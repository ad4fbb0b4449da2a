"""The API client's paging through lists: cursors, limits, when it stops, and malformed or repeated items."""

from __future__ import annotations

import httpx
import pytest

from batches.api.errors import MalformedResponseError
from batches.api.objects import ApiBatchPage
from tests.unit.api_client.support import batch_json, list_json


def test_it_lists_a_single_page_with_the_limit_and_no_after(api, client):
    route = api.get("/batches").respond(json=list_json(batch_json("b1"), batch_json("b2")))

    pages = list(client.list_batch_pages(limit=2))

    assert len(pages) == 1
    assert isinstance(pages[0], ApiBatchPage)
    assert [b.id for b in pages[0].data] == ["b1", "b2"]
    assert (pages[0].first_id, pages[0].last_id, pages[0].has_more) == ("b1", "b2", False)
    assert dict(route.calls.last.request.url.params) == {"limit": "2"}


def test_it_follows_pages_passing_the_last_id_as_after(api, client):
    route = api.get("/batches").mock(
        side_effect=[
            httpx.Response(200, json=list_json(batch_json("b1"), batch_json("b2"), has_more=True)),
            httpx.Response(200, json=list_json(batch_json("b3"), has_more=True)),
            httpx.Response(200, json=list_json(batch_json("b4"), has_more=False)),
        ]
    )

    ids = [batch.id for batch in client.iter_batches(limit=2)]

    assert ids == ["b1", "b2", "b3", "b4"]
    afters = [call.request.url.params.get("after") for call in route.calls]
    assert afters == [None, "b2", "b3"]


def test_it_uses_the_item_id_as_cursor_even_when_last_id_is_missing(api, client):
    first = list_json(batch_json("b1"), has_more=True)
    del first["last_id"]
    route = api.get("/batches").mock(
        side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=list_json())]
    )

    list(client.iter_batches())

    assert route.calls[1].request.url.params["after"] == "b1"


def test_it_starts_after_the_given_cursor(api, client):
    route = api.get("/batches").respond(json=list_json(batch_json("b9")))

    list(client.iter_batches(after="b8", limit=50))

    assert dict(route.calls.last.request.url.params) == {"limit": "50", "after": "b8"}


@pytest.mark.parametrize(("asked", "sent"), [(0, "1"), (-5, "1"), (1, "1"), (100, "100"), (500, "100")])
def test_it_clamps_the_page_limit_to_1_through_100(api, client, asked, sent):
    route = api.get("/batches").respond(json=list_json())

    list(client.list_batch_pages(limit=asked))

    assert route.calls.last.request.url.params["limit"] == sent


def test_it_stops_paging_when_has_more_is_false(api, client):
    route = api.get("/batches").respond(json=list_json(batch_json("b1"), has_more=False))

    assert len(list(client.list_batch_pages())) == 1
    assert route.call_count == 1


def test_it_stops_paging_when_has_more_is_missing(api, client):
    body = list_json(batch_json("b1"))
    del body["has_more"]
    route = api.get("/batches").respond(json=body)

    assert [b.id for b in client.iter_batches()] == ["b1"]
    assert route.call_count == 1


def test_it_stops_paging_when_an_empty_page_claims_has_more(api, client):
    route = api.get("/batches").respond(json=list_json(has_more=True))

    assert list(client.list_batch_pages()) == []
    assert route.call_count == 1


def test_a_list_item_without_an_id_is_skipped_and_the_rest_of_the_page_kept(api, client):
    no_id = batch_json("ignored")
    del no_id["id"]
    api.get("/batches").respond(json=list_json(batch_json("b1"), no_id, 42, batch_json("b2")))

    (page,) = list(client.list_batch_pages())

    assert [batch.id for batch in page.data] == ["b1", "b2"]
    assert len(page.skipped) == 2
    assert page.skipped[0].startswith("item 2 of the page: ")
    assert "no 'id'" in page.skipped[0]


def test_paging_goes_on_past_a_malformed_last_item(api, client):
    no_id = batch_json("ignored")
    del no_id["id"]
    route = api.get("/batches").mock(
        side_effect=[
            httpx.Response(200, json={"object": "list", "data": [batch_json("b1"), no_id], "has_more": True}),
            httpx.Response(
                200, json={"object": "list", "data": [no_id, batch_json("b2")], "has_more": False}
            ),
        ]
    )

    assert [batch.id for batch in client.iter_batches()] == ["b1", "b2"]
    assert route.calls[1].request.url.params["after"] == "b1"


def test_a_page_of_only_malformed_items_goes_on_from_its_last_id_or_stops_with_an_error(api, client):
    bad = {"object": "list", "data": ["x", "y"], "has_more": True, "last_id": "b5"}
    route = api.get("/batches").mock(
        side_effect=[httpx.Response(200, json=bad), httpx.Response(200, json=list_json(batch_json("b6")))]
    )
    assert [batch.id for batch in client.iter_batches()] == ["b6"]
    assert route.calls[1].request.url.params["after"] == "b5"

    del bad["last_id"]
    api.get("/batches").respond(json=bad)
    with pytest.raises(MalformedResponseError, match="no usable item"):
        list(client.iter_batches())


def test_it_stops_paging_when_a_page_repeats_ids(api, client):
    same_page = list_json(batch_json("b1"), batch_json("b2"), has_more=True)
    route = api.get("/batches").respond(json=same_page)

    ids = [b.id for b in client.iter_batches()]

    assert ids == ["b1", "b2"]
    assert route.call_count == 2


def test_it_yields_only_the_new_items_of_a_partly_repeated_page(api, client):
    route = api.get("/batches").mock(
        side_effect=[
            httpx.Response(200, json=list_json(batch_json("b1"), batch_json("b2"), has_more=True)),
            httpx.Response(200, json=list_json(batch_json("b2"), batch_json("b3"), has_more=True)),
            httpx.Response(200, json=list_json(batch_json("b3"), has_more=True)),
        ]
    )

    pages = list(client.list_batch_pages())

    assert [[b.id for b in page.data] for page in pages] == [["b1", "b2"], ["b3"]]
    assert route.calls[2].request.url.params["after"] == "b3"
    assert route.call_count == 3


def test_a_list_without_a_data_array_is_malformed(api, client):
    api.get("/batches").respond(json={"object": "list", "has_more": False})

    with pytest.raises(MalformedResponseError):
        list(client.iter_batches())
