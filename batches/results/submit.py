"""New batches made from old work: re-submitting the failed requests of a batch, and creating a
batch from an uploaded JSONL file once it is valid. Each mirrors the new batch at once, so the list
shows it without waiting for the next sync.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import closing
from dataclasses import dataclass
from typing import IO, Any

from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone

from batches import sync
from batches.api.client import BatchAPIClient
from batches.api.errors import APIError, NotFoundError, describe
from batches.models import Batch, Connection
from batches.results.files import ResultsError, open_client
from batches.results.summaries import failure_of
from batches.results.validation import (
    COMPLETION_WINDOWS,
    CREATED_BY_KEY,
    MAX_METADATA_KEYS,
    LineProblem,
    ValidationReport,
    validate_upload,
)

logger = logging.getLogger(__name__)

RETRY_OF_KEY = "retry_of"


def retries_of(batch: Batch) -> list[Batch]:
    """Batches created to re-run this one's failures (they name it in metadata.retry_of)."""
    retries = Batch.objects.filter(connection_id=batch.connection_id, metadata__retry_of=batch.batch_id)
    if batch.created_at is not None:
        retries = retries.filter(created_at__gte=batch.created_at)  # narrows the scan on a big table
    return list(retries.order_by("created_at", "id"))


def original_of(batch: Batch) -> Batch | None:
    parent = (batch.metadata or {}).get(RETRY_OF_KEY) if isinstance(batch.metadata, dict) else None
    if not parent:
        return None
    return Batch.objects.filter(connection_id=batch.connection_id, batch_id=parent).first()


def estimated_retry_count(batch: Batch) -> int | None:
    """How many requests a re-submit would send, from the stored counts (None: unknown, e.g. a file
    that failed validation reports no counts)."""
    if not batch.total_requests:
        return None
    return max(batch.total_requests - batch.completed_requests, 0)


def can_resubmit(batch: Batch) -> bool:
    if not batch.is_terminal or not batch.input_file_id or not batch.endpoint:
        return False
    estimate = estimated_retry_count(batch)
    return estimate is None or estimate > 0


def retry_metadata(original: dict[str, Any] | None, batch_id: str) -> tuple[dict[str, str], list[str]]:
    """The original's metadata plus the link back; the API allows 16 keys, so if the original used
    them all its last keys give way (they are returned) rather than the link."""
    kept = [(str(k), str(v)) for k, v in (original or {}).items() if k != RETRY_OF_KEY]
    room = MAX_METADATA_KEYS - 1
    metadata = dict(kept[:room])
    metadata[RETRY_OF_KEY] = batch_id
    return metadata, [key for key, _ in kept[room:]]


@dataclass(frozen=True)
class SubmitOutcome:
    ok: bool
    message: str
    batch: Batch | None = None
    report: ValidationReport | None = None  # for an upload that failed validation

    @property
    def problems(self) -> list[LineProblem]:
        return self.report.problems if self.report is not None else []


def _custom_id(raw: bytes) -> str | None:
    try:
        item = json.loads(raw)
    except ValueError:
        return None
    value = item.get("custom_id") if isinstance(item, dict) else None
    return value if isinstance(value, str) and value else None


def _succeeded_ids(client: BatchAPIClient, output_file_id: str) -> set[str]:
    succeeded: set[str] = set()
    with closing(client.iter_file_lines(output_file_id)) as lines:
        for raw in lines:
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(item, dict) or failure_of(item) is not None:
                continue
            response = item.get("response")
            status = response.get("status_code") if isinstance(response, dict) else None
            if isinstance(status, int) and 200 <= status < 300 and isinstance(item.get("custom_id"), str):
                succeeded.add(item["custom_id"])
    return succeeded


def _store(connection: Connection, api_batch) -> Batch:
    """Mirror a batch we just created, so the list shows it without waiting for the next sync."""
    sync.upsert_batches(connection, [api_batch], observed_at=timezone.now())
    return Batch.objects.select_related("connection").get(connection=connection, batch_id=api_batch.id)


def resubmit_failed(batch: Batch) -> SubmitOutcome:
    """Re-run the requests of a terminal batch that did not succeed (failed, expired or cancelled
    before they ran): the input file's lines whose custom_id has no 2xx line in the output file."""
    if not can_resubmit(batch):
        return SubmitOutcome(False, "This batch has nothing to re-submit.")
    try:
        client = open_client(batch.connection)
    except ResultsError as error:
        return SubmitOutcome(False, error.message)
    with client, tempfile.TemporaryFile() as retry_file:
        try:
            succeeded = _succeeded_ids(client, batch.output_file_id) if batch.output_file_id else set()
        except NotFoundError:
            return SubmitOutcome(
                False,
                "The output file is no longer available, so the dashboard cannot tell which requests "
                "succeeded; nothing was re-submitted.",
            )
        except APIError as error:
            return SubmitOutcome(False, f"{describe(error)} Nothing was re-submitted.")
        count = skipped = 0
        try:
            with closing(client.iter_file_lines(batch.input_file_id)) as lines:
                for raw in lines:
                    custom_id = _custom_id(raw)
                    if custom_id is None:
                        skipped += 1  # a line the API could not have run either
                    elif custom_id not in succeeded:
                        retry_file.write(raw + b"\n")
                        count += 1
        except NotFoundError:
            return SubmitOutcome(False, "The input file is no longer available; nothing was re-submitted.")
        except APIError as error:
            return SubmitOutcome(False, f"{describe(error)} Nothing was re-submitted.")
        if not count:
            return SubmitOutcome(
                False, "Every request of this batch succeeded: there is nothing to re-submit."
            )
        retry_file.seek(0)
        metadata, dropped = retry_metadata(batch.metadata, batch.batch_id)
        try:
            uploaded = client.upload_file(
                filename=f"{batch.batch_id}_retry.jsonl", content=retry_file, purpose="batch"
            )
        except APIError as error:
            return SubmitOutcome(False, f"Uploading the failed requests failed. {describe(error)}")
        try:
            api_batch = client.create_batch(
                input_file_id=uploaded.id,
                endpoint=batch.endpoint,
                completion_window=batch.completion_window or "24h",
                metadata=metadata,
            )
        except APIError as error:
            return SubmitOutcome(
                False,
                f"The failed requests were uploaded (file {uploaded.id}) but the batch was not created. "
                f"{describe(error)}",
            )
    new = _store(batch.connection, api_batch)
    message = f"Re-submitted {count:,} request{'s' if count != 1 else ''} as batch {new.batch_id}."
    if skipped:
        message += (
            f" {skipped:,} input line{'s' if skipped != 1 else ''} without a readable custom_id left out."
        )
    if dropped:
        message += f" Metadata keys left out to make room for {RETRY_OF_KEY}: {', '.join(dropped)}."
    logger.info("batch %s re-submitted as %s with %d requests", batch.batch_id, new.batch_id, count)
    return SubmitOutcome(True, message, new)


# --------------------------------------------------------------------------- creating from an upload


def _upload_name(filename: str) -> str:
    name = os.path.basename(filename or "").strip() or "batch_input.jsonl"
    # The API insists on the extension for purpose "batch".
    if not name.lower().endswith(".jsonl"):
        name += ".jsonl"
    return name[-200:]


def create_from_upload(
    connection: Connection,
    *,
    upload: IO[bytes],
    filename: str,
    size: int | None,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str],
    user: User | AnonymousUser | None,
) -> SubmitOutcome:
    """Validate the whole file first (nothing reaches the API unless every line is valid), then upload
    it, create the batch with metadata naming who created it, and mirror it at once."""
    if completion_window not in COMPLETION_WINDOWS:
        return SubmitOutcome(False, f"Unknown completion window {completion_window!r}.")
    upload.seek(0)
    report = validate_upload(iter(lambda: upload.read(1024 * 1024), b""), endpoint, size)
    if not report.ok:
        count = report.bad_lines
        summary = f"{count:,} invalid line{'s' if count != 1 else ''}" if count else "The file is not valid"
        return SubmitOutcome(False, f"{summary}; nothing was uploaded.", report=report)
    username = user.get_username() if user is not None and user.is_authenticated else "unknown"
    full_metadata = {**metadata, CREATED_BY_KEY: username}
    try:
        client = open_client(connection)
    except ResultsError as error:
        return SubmitOutcome(False, error.message)
    with client:
        upload.seek(0)
        try:
            uploaded = client.upload_file(filename=_upload_name(filename), content=upload, purpose="batch")
        except APIError as error:
            return SubmitOutcome(False, f"The upload failed. {describe(error)}")
        try:
            api_batch = client.create_batch(
                input_file_id=uploaded.id,
                endpoint=endpoint,
                completion_window=completion_window,
                metadata=full_metadata,
            )
        except APIError as error:
            return SubmitOutcome(
                False,
                f"The file was uploaded (file {uploaded.id}) but the batch was not created. "
                f"{describe(error)}",
            )
    new = _store(connection, api_batch)
    logger.info("batch %s created by %s from %d requests", new.batch_id, username, report.lines)
    noun = "request" if report.lines == 1 else "requests"
    return SubmitOutcome(True, f"Batch {new.batch_id} created from {report.lines:,} {noun}.", new)
