"""An idle connection's API calls on a real Celery worker, a real beat and a real Redis: refreshes and
full syncs together keep to one call per idle interval (batches/schedule.py, batches/pacing.py,
batches/tasks.py), at intervals shrunk from a minute to two seconds so that the test takes seconds."""

from __future__ import annotations

import re
import time

from batches.models import Batch, Connection
from tests.integration.test_celery_sync import wait_until

IDLE_REFRESH = 2  # SYNC_IDLE_REFRESH_SECONDS for the worker and beat
IDLE_FULL_SYNC = 7  # SYNC_IDLE_FULL_SYNC_SECONDS
WINDOW = 20.0  # seconds measured


def api_calls(simulator) -> int:
    """Every call the simulator's batch routes answered (lists and retrieves)."""
    return sum(row["count"] for row in simulator.requests("/v1/batches") if row["method"] == "GET")


def runs(worker, task: str) -> int:
    return len(re.findall(rf"Task batches\.tasks\.{task}\[[^\]]+\] succeeded", worker.output()))


def test_an_idle_connection_makes_one_api_call_per_idle_interval_full_syncs_included(
    start_worker, start_beat, simulator_connection, simulator
):
    # The simulator's clock stands still, so its active batches stay active: every refresh has work.
    Connection.objects.filter(pk=simulator_connection.pk).update(refresh_interval=1, full_sync_interval=3)
    pace = {
        "SYNC_IDLE_REFRESH_SECONDS": str(IDLE_REFRESH),
        "SYNC_IDLE_FULL_SYNC_SECONDS": str(IDLE_FULL_SYNC),
        "SYNC_API_CALLS_PER_MINUTE": "1000",
    }
    worker = start_worker(**pace)
    start_beat(**pace)
    wait_until(lambda: Batch.objects.count() == simulator.count(), message="the first full sync")
    wait_until(lambda: runs(worker, "refresh_active_batches") >= 1, timeout=30, message="a refresh")
    full_syncs, refreshes = runs(worker, "full_sync_batches"), runs(worker, "refresh_active_batches")
    before = api_calls(simulator)
    time.sleep(WINDOW)
    made = api_calls(simulator) - before
    full_syncs = runs(worker, "full_sync_batches") - full_syncs
    refreshes = runs(worker, "refresh_active_batches") - refreshes
    # Full syncs ran (every IDLE_FULL_SYNC seconds, each in the place of a refresh), and all the runs
    # together made about one call per idle interval: one run's calls more at most, for a run begun
    # just before the window whose calls fell in it. Refreshes every IDLE_REFRESH seconds and full
    # syncs beside them, each listing every page, would have made several times as many.
    pages = -(-simulator.count() // 100)
    assert full_syncs >= 2, worker.output()[-3000:]
    assert refreshes >= 1, worker.output()[-3000:]
    assert made <= WINDOW / IDLE_REFRESH + pages, (made, full_syncs, refreshes)
