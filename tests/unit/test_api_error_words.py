"""describe(): the one place an API error becomes words, in each of the three ways pages use it."""

from __future__ import annotations

import pytest

from batches.api.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    NotFoundError,
    RateLimitError,
    describe,
)

CANCEL = {
    "refused": "The API refused to cancel",
    "gone": "The API no longer knows this batch",
    "undone": "nothing was cancelled",
}


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (RateLimitError("slow down", status_code=429), "The API is rate limiting us. Try again in a minute."),
        (APITimeoutError("Request timed out"), "The API could not be reached. Try again."),
        (APIConnectionError("Could not reach the API"), "The API could not be reached. Try again."),
        (AuthenticationError("bad key", status_code=401), "The API refused this connection's key: bad key"),
        (BadRequestError("no such model", status_code=400), "The API answered with an error: no such model"),
        (NotFoundError("gone", status_code=404), "The API answered with an error: gone"),
    ],
)
def test_the_words_pages_show_for_a_failed_call(error, words):
    assert describe(error) == words


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            NotFoundError("gone", status_code=404),
            "The API no longer knows this batch; nothing was cancelled.",
        ),
        (
            RateLimitError("slow down", status_code=429),
            "The API is rate limiting us; nothing was cancelled. Try again in a minute.",
        ),
        (APITimeoutError("timed out"), "The API could not be reached; nothing was cancelled. Try again."),
        (AuthenticationError("bad key", status_code=401), "The API refused to cancel: bad key"),
        (BadRequestError("already done", status_code=400), "The API refused to cancel: already done"),
    ],
)
def test_the_words_a_cancel_shows(error, words):
    assert describe(error, **CANCEL) == words


def test_a_connection_test_quotes_only_an_api_error_body():
    quoted = AuthenticationError("Incorrect API key provided", status_code=401)
    quoted.from_error_body = True
    assert describe(quoted, base_url_unproven=True) == (
        "the API answered with an error: Incorrect API key provided [HTTP 401]"
    )
    page = APIStatusError("HTTP 403 from the API: <html>secret</html>", status_code=403)
    assert describe(page, base_url_unproven=True) == (
        "the server answered HTTP 403 without an API error body; check the base URL."
    )
    odd = MalformedResponseError("not JSON: <html>", status_code=200)
    assert describe(odd, base_url_unproven=True) == (
        "the server answered HTTP 200, but not as the Batch API does; check the base URL."
    )
    assert describe(APITimeoutError("x"), base_url_unproven=True) == "the API did not answer in time."
    refused = APIConnectionError("Could not reach the API (ConnectError: refused)")
    assert describe(refused, base_url_unproven=True) == str(refused)
    protocol = APIConnectionError("Could not reach the API (RemoteProtocolError: HTTP/1.1 666 <html>)")
    assert describe(protocol, base_url_unproven=True) == (
        "could not talk to the API (APIConnectionError); check the base URL."
    )
