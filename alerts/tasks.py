"""Celery tasks: thin wrappers over the alerts services."""

from __future__ import annotations

import logging

from celery import shared_task

from alerts import services
from batches import schedule, sync
from batches.api.errors import APIError
from batches.connections import ConnectionNotConfigured
from batches.models import Connection

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def process_alerts() -> str:
    """Run by beat every ALERTS_INTERVAL seconds; safe to run on several workers at once."""
    return str(services.process())


@shared_task(acks_late=True, ignore_result=True)
def refresh_batch_now(connection_id: int, batch_id: str) -> str:
    """An OpenAI webhook said this batch finished: fetch it now rather than at the next poll."""
    connection = Connection.objects.filter(pk=connection_id, enabled=True).first()
    if connection is None:
        return "skipped: no such enabled connection"
    if not schedule.may_call_api(connection):
        return "skipped: waiting for the API (rate limited or failing); the poll will catch up"
    try:
        batch = sync.refresh_batch(connection, batch_id)
    except (APIError, ConnectionNotConfigured) as error:
        # Polling stays the fallback, so one failed fetch changes nothing about the connection's state.
        logger.warning("Refreshing batch %s of connection %s failed: %s", batch_id, connection.name, error)
        return "failed"
    return f"refreshed {batch.batch_id}: {batch.status}"
