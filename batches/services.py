"""Writes the pages ask for (cancelling a batch); the sync writes live in batches.sync."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from batches import sync
from batches.api_client import APIError, NotFoundError
from batches.models import Batch


@dataclass(frozen=True)
class CancelOutcome:
    ok: bool
    message: str


def cancel_batch(batch: Batch) -> CancelOutcome:
    """Ask the API to cancel, then store what it answered so the page shows `cancelling` at once."""
    if batch.is_terminal:
        return CancelOutcome(
            False, f"This batch is already {batch.status}; there is nothing to cancel."
        )
    if batch.status in ("cancelling", "cancelled"):
        return CancelOutcome(False, "This batch is already being cancelled.")
    try:
        with sync.client_for(batch.connection) as client:
            api_batch = client.cancel_batch(batch.batch_id)
    except sync.ConnectionNotConfigured as error:
        return CancelOutcome(False, str(error))
    except NotFoundError:
        return CancelOutcome(False, "The API no longer knows this batch; nothing was cancelled.")
    except APIError as error:
        return CancelOutcome(False, f"The API refused to cancel: {error.message or error}")
    sync.upsert_batches(batch.connection, [api_batch], observed_at=timezone.now())
    return CancelOutcome(True, f"Cancellation requested: the batch is now {api_batch.status}.")
