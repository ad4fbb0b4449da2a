"""Housekeeping on real Celery workers racing each other through a real Redis: however many ticks
reach however many workers, it runs once."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import redis
from django.contrib.sessions.models import Session
from django.utils import timezone

from batches.models import Batch, ProgressSnapshot
from housekeeping import tasks
from tests.support.factories import make_batch


def test_two_workers_given_four_ticks_run_housekeeping_once(start_worker, redis_settings):
    redis.Redis.from_url(redis_settings).delete(tasks.DONE, tasks.LOCK)
    now = timezone.now()
    batch = make_batch(status="completed", in_progress_at=now - timedelta(hours=2), total_requests=100_000)
    ProgressSnapshot.objects.bulk_create(
        ProgressSnapshot(
            batch=batch,
            taken_at=now - timedelta(seconds=5 * i),
            completed=20_000 - 7 * i,
            failed=0,
            total=100_000,
        )
        for i in range(1, 1400)
    )
    Session.objects.create(session_key="e" * 32, session_data="", expire_date=now - timedelta(hours=1))
    workers = [start_worker(), start_worker()]
    for _ in range(4):
        tasks.housekeeping.delay()

    deadline = time.monotonic() + 60
    outcomes: list[str] = []
    while len(outcomes) < 4:
        assert time.monotonic() < deadline, "housekeeping ticks left unanswered:\n" + "\n".join(outcomes)
        time.sleep(0.2)
        outcomes = [
            line
            for worker in workers
            for line in re.findall(
                r"housekeeping\.tasks\.housekeeping\[[^\]]+\] succeeded in [^:]+: (.*)", worker.output()
            )
        ]

    ran = [line for line in outcomes if not line.strip("'\"").startswith("skipped")]
    assert len(ran) == 1, outcomes
    assert "snapshots: removed" in ran[0] and "sessions: removed 1 expired sessions" in ran[0]
    assert all("skipped" in line for line in outcomes if line not in ran)
    assert not Session.objects.filter(session_key="e" * 32).exists()
    assert ProgressSnapshot.objects.filter(batch=batch).count() <= 300
    assert Batch.objects.get(pk=batch.pk).snapshots_thinned_at is not None
    # Both workers were given ticks, so the once was really up for grabs by two.
    assert all("housekeeping.tasks.housekeeping" in worker.output() for worker in workers)
