"""The refresh schedules its own next run (batches/tasks.py, batches/pacing.py) on real Celery workers
and a real Redis: at its connection's pace, one chain however many workers, and beat restarts a lost
chain."""

from __future__ import annotations

import re
import time

import pytest

from batches import live, pacing, tasks
from batches.models import Connection
from tests.integration.test_celery_sync import wait_until

RUN = re.compile(r"refresh_active_batches\[[^\]]+\] succeeded in [0-9.e-]+s: 'refresh: ")


def runs(*workers) -> int:
    return sum(len(RUN.findall(worker.output())) for worker in workers)


@pytest.fixture
def fast_connection(simulator_connection) -> Connection:
    """Refreshed every second while watched; a simulator that moves no batch, so each run is cheap."""
    Connection.objects.filter(pk=simulator_connection.pk).update(refresh_interval=1)
    simulator_connection.refresh_from_db()
    return simulator_connection


def keep_watching(connection: Connection, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        live.watch_and_read([str(connection.pk)])
        time.sleep(0.5)


def test_a_refresh_runs_again_by_itself_at_its_pace_while_watched(start_worker, fast_connection):
    worker = start_worker(SYNC_API_CALLS_PER_MINUTE="1000")
    live.watch_and_read([str(fast_connection.pk)])
    tasks.refresh_active_batches.delay(fast_connection.pk)
    wait_until(lambda: runs(worker) >= 1, message="the first refresh")
    started = runs(worker)
    keep_watching(fast_connection, 6)
    # About one a second with no beat running: the chain alone. Not more (no second chain).
    assert 4 <= runs(worker) - started <= 8, worker.output()[-3000:]
    fast_connection.refresh_from_db()
    assert fast_connection.next_refresh_at is not None


def test_two_workers_and_two_kicks_still_make_one_chain(start_worker, fast_connection):
    first = start_worker(SYNC_API_CALLS_PER_MINUTE="1000")
    second = start_worker(SYNC_API_CALLS_PER_MINUTE="1000")
    live.watch_and_read([str(fast_connection.pk)])
    tasks.refresh_active_batches.delay(fast_connection.pk)
    tasks.refresh_active_batches.delay(fast_connection.pk)
    wait_until(lambda: runs(first, second) >= 2, message="both kicks")
    keep_watching(fast_connection, 2)
    started = runs(first, second)
    keep_watching(fast_connection, 6)
    assert 4 <= runs(first, second) - started <= 8, (first.output() + second.output())[-3000:]
    took_over = "a newer run took over"
    assert took_over in first.output() + second.output()


def test_the_budget_holds_across_workers(start_worker, fast_connection):
    first = start_worker(SYNC_API_CALLS_PER_MINUTE="3")
    second = start_worker(SYNC_API_CALLS_PER_MINUTE="3")
    live.watch_and_read([str(fast_connection.pk)])
    tasks.refresh_active_batches.delay(fast_connection.pk)
    keep_watching(fast_connection, 6)
    assert pacing.calls_in_last_minute(fast_connection.pk) <= 3
    assert runs(first, second) <= 3


def test_beat_restarts_a_chain_whose_worker_died(start_worker, start_beat, fast_connection):
    worker = start_worker(SYNC_API_CALLS_PER_MINUTE="1000", SYNC_CHAIN_GRACE="2")
    start_beat(SYNC_CHAIN_GRACE="2")
    live.watch_and_read([str(fast_connection.pk)])
    wait_until(lambda: runs(worker) >= 2, message="beat to start the chain")
    # The countdown of the next run dies with the worker (its message waits out the visibility
    # timeout, ten minutes): the chain is lost.
    worker.kill()
    replacement = start_worker(SYNC_API_CALLS_PER_MINUTE="1000", SYNC_CHAIN_GRACE="2")
    keep_watching(fast_connection, 1)
    wait_until(lambda: runs(replacement) >= 3, timeout=30, message="the chain to restart")
