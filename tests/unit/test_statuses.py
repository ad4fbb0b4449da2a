"""The status vocabulary (batches.statuses) against the copies that must not drift from it."""

from __future__ import annotations

from batches.api.objects import BATCH_TIMESTAMP_FIELDS
from batches.models import Batch
from batches.statuses import (
    ACTIVE_STATUSES,
    CANCELLABLE_STATUSES,
    KNOWN_STATUSES,
    STATUS_CLASS,
    STATUS_TIMESTAMP_FIELD,
    TERMINAL_STATUSES,
    status_class,
    status_label,
)
from simulator import lifecycle


def test_the_simulator_models_the_same_statuses() -> None:
    # The simulator keeps its own lists on purpose (it may not import batches); they must stay equal.
    assert sorted(lifecycle.STATUSES) == sorted(KNOWN_STATUSES)
    assert set(lifecycle.TERMINAL) == set(TERMINAL_STATUSES)
    assert lifecycle.BATCH_TIME_FIELDS == BATCH_TIMESTAMP_FIELDS


def test_the_sets_partition_the_known_statuses() -> None:
    assert len(set(KNOWN_STATUSES)) == len(KNOWN_STATUSES)
    assert set(ACTIVE_STATUSES) | set(TERMINAL_STATUSES) == set(KNOWN_STATUSES)
    assert not set(ACTIVE_STATUSES) & set(TERMINAL_STATUSES)
    assert set(CANCELLABLE_STATUSES) <= set(ACTIVE_STATUSES)


def test_every_known_status_has_a_timestamp_field_and_a_class() -> None:
    assert tuple(STATUS_TIMESTAMP_FIELD) == KNOWN_STATUSES
    assert set(STATUS_TIMESTAMP_FIELD.values()) <= set(BATCH_TIMESTAMP_FIELDS)
    model_fields = {f.name for f in Batch._meta.get_fields()}
    assert set(STATUS_TIMESTAMP_FIELD.values()) <= model_fields
    assert set(STATUS_CLASS) == set(KNOWN_STATUSES)


def test_display() -> None:
    assert status_class("in_progress") == "run"
    assert status_class("paused_for_review") == "unknown"
    assert status_label("in_progress") == "in progress"
