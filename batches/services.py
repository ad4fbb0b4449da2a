"""Writes the pages ask for (cancelling a batch); the sync writes live in batches.sync."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEvent
from batches import sync
from batches.api_client import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BatchAPIClient,
    NotFoundError,
    RateLimitError,
)
from batches.connections import ConnectionNotConfigured, client_for
from batches.models import Batch, CancelRequest


@dataclass(frozen=True)
class CancelOutcome:
    ok: bool
    message: str


def cancel_batch(
    batch: Batch,
    *,
    user: AbstractBaseUser | AnonymousUser | None = None,
    request: HttpRequest | None = None,
) -> CancelOutcome:
    """Ask the API to cancel, store what it answered (so the page shows `cancelling` at once) and
    record who asked. Every failure comes back as a plain-words message; the stored batch is then
    refreshed so the page shows its true state."""
    outcome = _request_cancel(batch)
    CancelRequest.objects.create(
        batch=batch,
        user=user if user is not None and user.is_authenticated else None,
        requested_at=timezone.now(),
        succeeded=outcome.ok,
        message=outcome.message,
    )
    audit.record(
        AuditEvent.Action.CANCEL,
        actor=user,
        target=f"{batch.connection.name}/{batch.batch_id}",
        succeeded=outcome.ok,
        detail=outcome.message,
        request=request,
    )
    return outcome


def _request_cancel(batch: Batch) -> CancelOutcome:
    if not batch.can_cancel:
        return CancelOutcome(False, f"This batch is {batch.status}: it can no longer be cancelled.")
    try:
        with client_for(batch.connection) as client:
            try:
                api_batch = client.cancel_batch(batch.batch_id)
            except APIError as error:
                _refresh_quietly(batch, client)
                return CancelOutcome(False, _explain(error))
    except ConnectionNotConfigured as error:
        return CancelOutcome(False, str(error))
    sync.upsert_batches(batch.connection, [api_batch], observed_at=timezone.now())
    return CancelOutcome(True, f"Cancellation requested: the batch is now {api_batch.status}.")


def _explain(error: APIError) -> str:
    if isinstance(error, NotFoundError):
        return "The API no longer knows this batch; nothing was cancelled."
    if isinstance(error, RateLimitError):
        return "The API is rate limiting us; nothing was cancelled. Try again in a minute."
    if isinstance(error, APITimeoutError | APIConnectionError):
        return "The API could not be reached; nothing was cancelled. Try again."
    detail = error.message or str(error)
    return f"The API refused to cancel: {detail}"


def _refresh_quietly(batch: Batch, client: BatchAPIClient) -> None:
    """After a refused cancel, show the batch's true state (it has often just finished)."""
    try:
        api_batch = client.retrieve_batch(batch.batch_id)
    except APIError:
        return
    sync.upsert_batches(batch.connection, [api_batch], observed_at=timezone.now())
