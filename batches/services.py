"""Writes the pages ask for: cancelling, creating and re-submitting batches, and managing
connections. Each records its audit event here, so that no view writes one; the sync writes live in
batches.sync."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import ProtectedError
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEvent
from batches import secrets, sync
from batches.api.client import BatchAPIClient
from batches.api.errors import APIError, describe
from batches.connections import ConnectionNotConfigured, client_for
from batches.models import Batch, CancelRequest, Connection
from batches.results import submit

Actor = User | AnonymousUser


@dataclass(frozen=True)
class CancelOutcome:
    ok: bool
    message: str


def cancel_batch(
    batch: Batch,
    *,
    user: Actor | None = None,
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
                words = describe(
                    error,
                    refused="The API refused to cancel",
                    gone="The API no longer knows this batch",
                    undone="nothing was cancelled",
                )
                return CancelOutcome(False, words)
    except ConnectionNotConfigured as error:
        return CancelOutcome(False, str(error))
    sync.upsert_batches(batch.connection, [api_batch], observed_at=timezone.now())
    return CancelOutcome(True, f"Cancellation requested: the batch is now {api_batch.status}.")


def _refresh_quietly(batch: Batch, client: BatchAPIClient) -> None:
    """After a refused cancel, show the batch's true state (it has often just finished)."""
    try:
        api_batch = client.retrieve_batch(batch.batch_id)
    except APIError:
        return
    sync.upsert_batches(batch.connection, [api_batch], observed_at=timezone.now())


# --------------------------------------------------------------------------- create and re-submit


def create_from_upload(
    connection: Connection,
    *,
    upload: IO[bytes],
    filename: str,
    size: int | None,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str],
    user: Actor | None,
    request: HttpRequest | None = None,
) -> submit.SubmitOutcome:
    """Create a batch from an uploaded file (batches.results.submit does the work) and record who asked."""
    outcome = submit.create_from_upload(
        connection,
        upload=upload,
        filename=filename,
        size=size,
        endpoint=endpoint,
        completion_window=completion_window,
        metadata=metadata,
        user=user,
    )
    audit.record(
        AuditEvent.Action.CREATE_BATCH,
        actor=user,
        target=f"{connection.name}/{outcome.batch.batch_id if outcome.batch else '-'}",
        succeeded=outcome.ok,
        detail=outcome.message,
        request=request,
    )
    return outcome


def resubmit_failed(
    batch: Batch, *, user: Actor | None, request: HttpRequest | None = None
) -> submit.SubmitOutcome:
    """Re-submit the requests of a batch that did not succeed (batches.results.submit does the work) and
    record who asked."""
    outcome = submit.resubmit_failed(batch)
    audit.record(
        AuditEvent.Action.CREATE_BATCH,
        actor=user,
        target=f"{batch.connection.name}/{outcome.batch.batch_id if outcome.batch else '-'}",
        succeeded=outcome.ok,
        detail=f"re-submit of {batch.batch_id}: {outcome.message}",
        request=request,
    )
    return outcome


# --------------------------------------------------------------------------- connections


@dataclass(frozen=True)
class ConnectionOutcome:
    ok: bool
    message: str


def save_connection(
    connection: Connection,
    *,
    changed: Sequence[str],
    key_storage: str | None,
    api_key: str,
    user: Actor | None,
    request: HttpRequest | None = None,
) -> None:
    """Save a connection filled in from its form, its API key stored as chosen, and record which
    fields changed (never the key itself). Raises secrets.EncryptionNotConfigured, having saved
    nothing, when a key is to be stored encrypted without an encryption key."""
    created = connection.pk is None
    if not connection.from_environment:
        _apply_key(connection, key_storage, api_key)
    connection.save()
    action = AuditEvent.Action.CONNECTION_CREATE if created else AuditEvent.Action.CONNECTION_UPDATE
    key_note = " (key replaced)" if api_key else ""
    audit.record(
        action,
        actor=user,
        target=connection.name,
        request=request,
        detail=f"changed: {', '.join(changed) or 'nothing'}{key_note}",
    )


def _apply_key(connection: Connection, storage: str | None, api_key: str) -> None:
    if storage == "env":
        connection.api_key_encrypted = ""
        connection.api_key_last4 = ""
    elif api_key:
        connection.api_key_encrypted = secrets.encrypt(api_key)
        connection.api_key_last4 = secrets.last4(api_key)
        connection.api_key_env = ""


def delete_connection(
    connection: Connection, *, user: Actor | None, request: HttpRequest | None = None
) -> ConnectionOutcome:
    if connection.from_environment:
        return ConnectionOutcome(
            False, "The connection configured by the environment cannot be deleted; disable it."
        )
    try:
        connection.delete()
    except ProtectedError:
        return ConnectionOutcome(
            False,
            f"{connection.name} still has batches in the dashboard; "
            "disable it instead to keep their history.",
        )
    audit.record(AuditEvent.Action.CONNECTION_DELETE, actor=user, target=connection.name, request=request)
    return ConnectionOutcome(True, f"Connection {connection.name} deleted.")


def check_connection(
    connection: Connection, *, user: Actor | None, request: HttpRequest | None = None
) -> ConnectionOutcome:
    """List one batch: proves the URL, the key and the headers together."""
    try:
        with client_for(connection) as client:
            page = next(client.list_batch_pages(limit=1), None)
        ok = True
        message = f"{connection.name}: the API answered" + (
            f"; newest batch {page.data[0].id}." if page and page.data else "; no batches yet."
        )
    except ConnectionNotConfigured as error:
        ok, message = False, str(error)
    except APIError as error:
        ok, message = False, f"{connection.name}: {describe(error, base_url_unproven=True)}"
    audit.record(
        AuditEvent.Action.CONNECTION_TEST,
        actor=user,
        target=connection.name,
        succeeded=ok,
        detail=message,
        request=request,
    )
    return ConnectionOutcome(ok, message)
