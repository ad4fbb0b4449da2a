"""The API's errors: one exception hierarchy modelled on the official SDKs, and describe(), the one
place an error becomes words for a page or a message.

The client raises only these, with the API key already scrubbed from every string.
"""

from __future__ import annotations

import re
from typing import Any


class APIError(Exception):
    """Anything that went wrong talking to the API. The client redacts the key before raising."""

    # Whether the message came from an API error body ({"error": {"message": ...}}) rather than from
    # the first bytes of whatever answered: only the former is fit to quote to a user (a "Test" of a
    # connection pointed somewhere else must not echo that other server's page).
    from_error_body: bool = False

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        # Only the message goes into args so that pickling (Celery results) can rebuild us.
        super().__init__(message)
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.status_code = status_code

    def __str__(self) -> str:
        details = [
            f"HTTP {self.status_code}" if self.status_code is not None else None,
            f"type={self.type}" if self.type else None,
            f"code={self.code}" if self.code else None,
            f"param={self.param}" if self.param else None,
            f"request_id={self.request_id}" if self.request_id else None,
        ]
        shown = ", ".join(detail for detail in details if detail)
        return f"{self.message} [{shown}]" if shown else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class APIStatusError(APIError):
    """The API answered with a non-2xx status."""


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    pass


class APITimeoutError(APIError):
    pass


class APIConnectionError(APIError):
    pass


class MalformedResponseError(APIError):
    """Non-JSON body, JSON of the wrong shape, or a body cut off mid-stream."""


# Transport errors whose text is about the connection itself (refused, unresolved, TLS), not bytes the
# other side sent; a protocol error's text can quote what answered (h11 quotes a bad status line).
_CONNECT_FAILURE = re.compile(r"Could not reach the API \((ConnectError|ConnectTimeout)\b")


def describe(
    error: APIError,
    *,
    refused: str = "",
    gone: str = "",
    undone: str = "",
    base_url_unproven: bool = False,
) -> str:
    """An API error in plain words for a page or a message; the client scrubbed the key from it.

    refused: the words before the API's own message when it refused ("The API refused to cancel");
        without them a refused key is told apart from other errors.
    gone: what a 404 means to the caller ("The API no longer knows this batch"); without it a 404 is
        one more error.
    undone: what the failure left undone ("nothing was cancelled"), so the reader knows that trying
        again is safe.
    base_url_unproven: the base URL may point at any server (a connection's "Test"). The words then
        quote the API's own error message only when an API error body carried one, otherwise only the
        status or the kind of failure: never the bytes of whatever answered, whose page is not the
        admin's to read through ours.
    """
    if base_url_unproven:
        status = f"HTTP {error.status_code}" if error.status_code is not None else None
        if isinstance(error, APIStatusError):
            if error.from_error_body:
                return f"the API answered with an error: {error}"
            return f"the server answered {status} without an API error body; check the base URL."
        if isinstance(error, MalformedResponseError):
            answered = f"answered {status}" if status else "answered"
            return f"the server {answered}, but not as the Batch API does; check the base URL."
        if isinstance(error, APITimeoutError):
            return "the API did not answer in time."
        if isinstance(error, APIConnectionError) and _CONNECT_FAILURE.match(error.message):
            return str(error)
        return f"could not talk to the API ({type(error).__name__}); check the base URL."
    after = f"; {undone}" if undone else ""
    if gone and isinstance(error, NotFoundError):
        return f"{gone}{after}."
    if isinstance(error, RateLimitError):
        return f"The API is rate limiting us{after}. Try again in a minute."
    if isinstance(error, APITimeoutError | APIConnectionError):
        return f"The API could not be reached{after}. Try again."
    if refused:
        return f"{refused}: {error.message or error}"
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return f"The API refused this connection's key: {error.message}"
    return f"The API answered with an error: {error.message or error}"
