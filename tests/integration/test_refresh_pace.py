"""The refresh runs at its connection's pace on real Celery workers, a real beat and a real Redis:
each refresh records when the next is due and beat's dispatcher, ticking every second, starts it then
(batches/tasks.py, batches/schedule.py, batches/pacing.py). No countdown message is ever held by a
worker, so there is nothing to lose when one dies or Redis drops."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from django.utils import timezone

from batches import live, pacing
from batches.models import Connection
from tests.integration.test_celery_sync import wait_until
from tests.support.processes import WorkerProcess, start_beat_process, stop_process_group, subprocess_env

RUN = re.compile(
    r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/[^\]]+\] "
    r"Task batches\.tasks\.refresh_active_batches\[[^\]]+\] succeeded in [0-9.e-]+s: 'refresh: "
)
INTERVAL = 2  # seconds between two refreshes of the watched connection


def run_ends(*workers: WorkerProcess) -> list[float]:
    """When each refresh ended, from the workers' logs, in order."""
    return sorted(
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for worker in workers
        for stamp in RUN.findall(worker.output())
    )


def gaps(ends: list[float]) -> list[float]:
    return [round(later - earlier, 2) for earlier, later in pairwise(ends)]


@pytest.fixture
def paced_connection(simulator_connection) -> Connection:
    """Refreshed every INTERVAL seconds while watched; a simulator that moves no batch, so each run is
    cheap. Its full sync is far off, so that only refreshes run."""
    Connection.objects.filter(pk=simulator_connection.pk).update(
        refresh_interval=INTERVAL,
        full_sync_interval=3600,
        next_full_sync_at=timezone.now() + timedelta(hours=1),
    )
    simulator_connection.refresh_from_db()
    return simulator_connection


def keep_watching(connection: Connection, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        live.watch_and_read([str(connection.pk)])
        time.sleep(0.5)


def test_a_watched_refresh_keeps_its_pace_with_beat_starting_each_run_when_due(
    start_worker, start_beat, paced_connection
):
    worker = start_worker(SYNC_API_CALLS_PER_MINUTE="1000")
    live.watch_and_read([str(paced_connection.pk)])
    start_beat()
    wait_until(lambda: len(run_ends(worker)) >= 2, message="beat to start the refreshes")
    first = len(run_ends(worker))
    keep_watching(paced_connection, 12)
    ends = run_ends(worker)[first - 1 :]
    # Each run is due INTERVAL after the previous one ended and starts at beat's next tick (a
    # second at most): never sooner, never much later.
    assert all(INTERVAL - 0.05 <= gap <= INTERVAL + 1.8 for gap in gaps(ends)), (
        gaps(ends),
        worker.output()[-3000:],
    )
    assert 4 <= len(ends) - 1 <= 6, gaps(ends)


def test_two_workers_and_two_beats_never_run_one_refresh_twice(
    start_worker, start_beat, paced_connection, redis_settings, tmp_path
):
    first = start_worker(SYNC_API_CALLS_PER_MINUTE="1000")
    second = start_worker(SYNC_API_CALLS_PER_MINUTE="1000")
    live.watch_and_read([str(paced_connection.pk)])
    start_beat()
    other_beat_dir = tmp_path / "other-beat"
    other_beat_dir.mkdir()
    other_beat = start_beat_process(
        subprocess_env(REDIS_URL=redis_settings, SYNC_DISPATCH_INTERVAL="1"), other_beat_dir
    )
    try:
        wait_until(lambda: len(run_ends(first, second)) >= 2, message="the refreshes to start")
        started = len(run_ends(first, second))
        keep_watching(paced_connection, 12)
    finally:
        stop_process_group(other_beat)
    ends = run_ends(first, second)[started - 1 :]
    # Both dispatchers tick every second and both workers take tasks, yet each due refresh is
    # claimed once (compare-and-set on next_refresh_at): no two runs closer than the interval, and
    # no run ever found another holding the lock.
    assert all(gap >= INTERVAL - 0.05 for gap in gaps(ends)), gaps(ends)
    assert 4 <= len(ends) - 1 <= 6, gaps(ends)
    assert "another run holds the lock" not in first.output() + second.output()


def test_the_budget_holds_across_workers(start_worker, start_beat, paced_connection):
    first = start_worker(SYNC_API_CALLS_PER_MINUTE="3")
    second = start_worker(SYNC_API_CALLS_PER_MINUTE="3")
    live.watch_and_read([str(paced_connection.pk)])
    start_beat(SYNC_API_CALLS_PER_MINUTE="3")
    keep_watching(paced_connection, 10)
    assert pacing.calls_in_last_minute(paced_connection.pk) <= 3
    assert 1 <= len(run_ends(first, second)) <= 3


def test_a_killed_workers_refresh_is_picked_up_by_another(start_worker, start_beat, paced_connection):
    worker = start_worker(SYNC_API_CALLS_PER_MINUTE="1000")
    live.watch_and_read([str(paced_connection.pk)])
    start_beat()
    wait_until(lambda: len(run_ends(worker)) >= 2, message="beat to start the refreshes")
    # Killed as a crash or OOM would: a run it had taken never records the next; the claim already
    # moved the due time one interval on, so beat claims it again then.
    worker.kill()
    replacement = start_worker(SYNC_API_CALLS_PER_MINUTE="1000")
    keep_watching(paced_connection, 1)
    wait_until(lambda: len(run_ends(replacement)) >= 3, timeout=30, message="refreshes on the other worker")
