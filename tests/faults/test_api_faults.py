"""A misbehaving API during full syncs on a real Celery worker: pages stay up and say the data is
stale, and once the API behaves again the database equals the API exactly.

(A worker killed with SIGKILL mid-sync is covered in tests/integration/test_celery_sync.py:
test_a_worker_killed_mid_sync_loses_nothing_and_duplicates_nothing.)
"""

from __future__ import annotations

import time
from collections import Counter

from django.utils import timezone

from batches import tasks
from batches.models import Batch, Connection
from tests.faults.conftest import fetch_dashboard_pages
from tests.integration.test_celery_sync import assert_mirror, run_task_and_wait
from tests.support.factories import make_user

# About 30 % of API calls misbehave: 429 with retry-after, 500/502/503, answers slower than the
# read timeout, and bodies cut off mid-way. The fault stream is seeded, and one worker makes the
# calls one after another, so every run meets the same faults.
FAULTS = {
    "rate_429": 0.1,
    "rate_5xx": 0.12,
    "rate_slow": 0.06,
    "slow_seconds": 1.0,
    "rate_cutoff": 0.06,
    "retry_after_seconds": 1.5,
    "seed": 5,
}
# One retry per call, so that some syncs fail as a whole and the connection waits; a read timeout
# below the slow answers' delay; a backoff long enough for the pages to be seen while it lasts.
# The rounds run full syncs back to back, far more than a minute's API budget (batches.pacing), which
# full syncs spend from too: the budget is not what this test is about.
WORKER_ENV = {
    "OPENAI_READ_TIMEOUT": "0.5",
    "OPENAI_MAX_RETRIES": "1",
    "SYNC_FAILURE_BACKOFF": "1.5",
    "SYNC_API_CALLS_PER_MINUTE": "100000",
}
# Rounds go on until both kinds of failure were seen on the pages (and at least MIN_ROUNDS ran).
MIN_ROUNDS, MAX_ROUNDS = 6, 25
RATE_LIMITED = "rate limited by the API"
UNREACHABLE = "API unreachable"


def _waiting(connection: Connection, at) -> bool:
    return connection.next_attempt_at is not None and connection.next_attempt_at > at


def _check_pages(client, connection: Connection, seen: Counter) -> None:
    """The pages answer 200; when the connection is waiting out a failure both the list and its
    summary poll say so, with the right reason."""
    before = Connection.objects.get(pk=connection.pk)
    first = Batch.objects.filter(connection=connection).order_by("pk").values_list("pk", flat=True).first()
    responses = fetch_dashboard_pages(client, first)
    if first is not None:
        assert "Last synced" in responses["detail"].content.decode()
    after = Connection.objects.get(pk=connection.pk)
    # Only when the state could not have changed while the pages were rendered.
    if (
        _waiting(after, timezone.now())
        and before.next_attempt_at == after.next_attempt_at
        and before.last_error == after.last_error
    ):
        rate_limited = "429" in after.last_error or "rate limit" in after.last_error.lower()
        reason = RATE_LIMITED if rate_limited else UNREACHABLE
        for name in ("list", "summary"):
            body = responses[name].content.decode()
            assert f"⚠ {connection.name}: {reason}; showing the last known data" in body, name
        seen[reason] += 1
    else:
        seen["not waiting"] += 1


def _watch_until(condition, client, connection: Connection, seen: Counter, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_pages(client, connection, seen)
        if condition():
            return
        time.sleep(0.15)
    raise AssertionError(f"timed out after {timeout} s; pages seen: {dict(seen)}")


def _wait_out_backoff(client, connection: Connection, seen: Counter) -> None:
    _watch_until(
        lambda: not _waiting(Connection.objects.get(pk=connection.pk), timezone.now()),
        client,
        connection,
        seen,
    )


def test_pages_stay_up_with_a_stale_marker_and_the_mirror_converges_once_api_faults_stop(
    start_worker, start_simulator, client, monkeypatch
):
    simulator = start_simulator(batches=400, seed=21)
    monkeypatch.setenv("SIMULATOR_TEST_API_KEY", "sk-test-faults")
    connection = Connection.objects.create(
        name="simulated", base_url=simulator.base_url, api_key_env="SIMULATOR_TEST_API_KEY"
    )
    client.force_login(make_user("wall-screen"))
    start_worker(**WORKER_ENV)
    simulator.set_faults(**FAULTS)

    seen: Counter = Counter()
    outcomes = Counter()
    for round_number in range(MAX_ROUNDS):
        if round_number >= MIN_ROUNDS and seen[RATE_LIMITED] and seen[UNREACHABLE]:
            break
        simulator.advance(seconds=900)
        # A run enqueued while the connection waits is skipped without a trace: wait it out first.
        _wait_out_backoff(client, connection, seen)
        connection.refresh_from_db()
        before = (connection.last_error_at, connection.last_success_at)
        tasks.full_sync_batches.delay(connection.pk)

        def finished(before=before) -> bool:
            current = Connection.objects.get(pk=connection.pk)
            return (current.last_error_at, current.last_success_at) != before

        _watch_until(finished, client, connection, seen)
        connection.refresh_from_db()
        outcomes["failed" if connection.last_error_at != before[0] else "succeeded"] += 1
        # The pages right after a failure, while the connection waits.
        _check_pages(client, connection, seen)

    print(f"rounds: {dict(outcomes)}; pages seen: {dict(seen)}")
    assert outcomes["failed"] >= 1 and outcomes["succeeded"] >= 1, outcomes
    assert seen[RATE_LIMITED] >= 1 and seen[UNREACHABLE] >= 1, seen

    simulator.set_faults()
    _wait_out_backoff(client, connection, seen)
    connection.refresh_from_db()
    run_task_and_wait(tasks.full_sync_batches, connection)
    run_task_and_wait(tasks.refresh_active_batches, connection)
    assert_mirror(simulator, connection)
    summary = fetch_dashboard_pages(client, None)["summary"].content.decode()
    assert f'<span class="fresh">{connection.name}: synced' in summary
