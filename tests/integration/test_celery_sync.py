"""The sync on a real Celery worker, through a real Redis, against the simulator."""

import time

from batches import tasks
from batches.models import Batch, BatchStatusChange, Connection


def wait_until(condition, timeout: float = 60.0, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def assert_mirror(simulator, connection) -> None:
    expected = {b["id"]: b for b in simulator.batches()}
    stored = dict(Batch.objects.filter(connection=connection).values_list("batch_id", "raw"))
    assert set(stored) == set(expected)
    assert [i for i, raw in expected.items() if stored[i] != raw] == []
    # No duplicates, by construction and in fact.
    assert Batch.objects.filter(connection=connection).count() == len(expected)
    statuses = BatchStatusChange.objects.filter(batch__connection=connection)
    assert statuses.count() == len(set(statuses.values_list("batch_id", "new_status")))


def successful_runs(connection: Connection):
    connection.refresh_from_db()
    return connection.last_success_at


def run_task_and_wait(task, connection: Connection, timeout: float = 60.0) -> None:
    before = successful_runs(connection)
    task.delay(connection.pk)
    wait_until(lambda: successful_runs(connection) != before, timeout, message=f"{task.name} to finish")


def test_a_sync_task_runs_on_a_real_worker_through_redis(start_worker, simulator_connection, simulator):
    worker = start_worker()
    run_task_and_wait(tasks.full_sync_batches, simulator_connection)
    assert_mirror(simulator, simulator_connection)
    assert "full_sync_batches" in worker.output()


def test_after_many_simulated_changes_the_database_equals_the_simulator(
    start_worker, simulator_connection, simulator
):
    # Eight refreshes back to back: more than a minute's API budget allows (batches.pacing).
    start_worker(SYNC_API_CALLS_PER_MINUTE="100000")
    run_task_and_wait(tasks.full_sync_batches, simulator_connection)
    for _ in range(8):
        simulator.advance(seconds=1500)
        run_task_and_wait(tasks.refresh_active_batches, simulator_connection)
    # Batches that finished between refreshes were caught by the refreshes themselves.
    assert_mirror(simulator, simulator_connection)


def test_injected_429_5xx_and_timeouts_do_not_corrupt_the_mirror(
    start_worker, simulator_connection, simulator
):
    start_worker(SYNC_FAILURE_BACKOFF="0.2", OPENAI_READ_TIMEOUT="0.5")
    simulator.set_faults(
        rate_429=0.15,
        rate_5xx=0.15,
        rate_slow=0.1,
        slow_seconds=1.0,
        rate_cutoff=0.1,
        retry_after_seconds=0.2,
    )
    for _ in range(10):
        simulator.advance(seconds=900)
        before = simulator_connection.last_error_at, successful_runs(simulator_connection)
        tasks.full_sync_batches.delay(simulator_connection.pk)
        wait_until(
            lambda before=before: (
                (simulator_connection.last_error_at, successful_runs(simulator_connection)) != before
            ),
            message="a run to succeed or fail",
        )
    simulator.set_faults()
    simulator_connection.refresh_from_db()
    wait_until(lambda: not simulator_connection.next_attempt_at or _waited(simulator_connection), 10)
    run_task_and_wait(tasks.full_sync_batches, simulator_connection)
    assert_mirror(simulator, simulator_connection)


def _waited(connection: Connection) -> bool:
    from django.utils import timezone

    connection.refresh_from_db()
    return connection.next_attempt_at is None or connection.next_attempt_at <= timezone.now()


def test_a_worker_killed_mid_sync_loses_nothing_and_duplicates_nothing(
    start_worker, start_simulator, monkeypatch, db
):
    simulator = start_simulator(batches=1500, seed=11)
    monkeypatch.setenv("SIMULATOR_TEST_API_KEY", "sk-test")
    connection = Connection.objects.create(
        name="big", base_url=simulator.base_url, api_key_env="SIMULATOR_TEST_API_KEY"
    )
    quick_recovery = {"SYNC_LOCK_TIMEOUT": "2", "CELERY_VISIBILITY_TIMEOUT": "4"}
    doomed = start_worker(**quick_recovery)
    simulator.set_faults(rate_slow=1.0, slow_seconds=0.4)
    tasks.full_sync_batches.delay(connection.pk)
    wait_until(lambda: Batch.objects.filter(connection=connection).count() >= 300, message="a partial sync")
    doomed.kill()
    partial = Batch.objects.filter(connection=connection).count()
    assert 300 <= partial < 1500
    simulator.set_faults()
    # Nothing is enqueued again: acks_late hands the killed worker's message to the next worker.
    start_worker(**quick_recovery)
    wait_until(lambda: successful_runs(connection) is not None, timeout=90, message="the redelivered run")
    assert_mirror(simulator, connection)
