"""Redis dies under a running worker and beat: the pages and cancel do not need it, and syncing
resumes by itself once Redis is back on its port."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from batches.models import Batch, Connection
from dashboard import shared_redis
from dashboard.celery import app as celery_app
from tests.conftest import free_port
from tests.faults.conftest import fetch_dashboard_pages
from tests.integration.test_celery_sync import assert_mirror, wait_until
from tests.support.factories import make_user
from tests.support.processes import WorkerProcess, start_beat_process, stop_process_group, subprocess_env


def _mirrors(simulator, connection: Connection) -> bool:
    try:
        assert_mirror(simulator, connection)
    except AssertionError:
        return False
    return True


@pytest.fixture
def web_process_on(settings, monkeypatch):
    """Points this process (the one the test client's requests run in) at a given Redis: the sync
    locks and any task a view would publish go there."""

    def point_at(url: str) -> None:
        settings.REDIS_URL = url
        shared_redis.client.cache_clear()
        monkeypatch.setattr(celery_app.conf, "broker_url", url)
        monkeypatch.setattr(celery_app, "_pool", None)

    yield point_at
    shared_redis.client.cache_clear()


def test_pages_and_cancel_work_without_redis_and_syncing_resumes_when_it_returns(
    transactional_db, dedicated_redis, start_simulator, web_process_on, client, monkeypatch, tmp_path
):
    simulator = start_simulator(batches=150, seed=31)
    monkeypatch.setenv("SIMULATOR_TEST_API_KEY", "sk-test-redis-outage")
    connection = Connection.objects.create(
        name="simulated",
        base_url=simulator.base_url,
        api_key_env="SIMULATOR_TEST_API_KEY",
        refresh_interval=1,
        full_sync_interval=3600,
    )
    # The environment's connection stays out of it (and no call can reach the real API).
    Connection.objects.update_or_create(
        name="default", defaults={"from_environment": True, "api_key_env": "OPENAI_API_KEY", "enabled": False}
    )
    web_process_on(dedicated_redis.url)
    env = subprocess_env(
        REDIS_URL=dedicated_redis.url,
        SYNC_DISPATCH_INTERVAL="1",
        OPENAI_API_KEY="",
        OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log")
    beat = start_beat_process(env, tmp_path)
    try:
        wait_until(lambda: _mirrors(simulator, connection), timeout=60, message="the first sync")

        dedicated_redis.kill()
        down_at = time.monotonic()
        admin = make_user("ops-admin", role="admin")
        client.force_login(admin)
        active = Batch.objects.filter(connection=connection, status__in=["validating", "in_progress"])
        victim = active.order_by("pk").first()
        fetch_dashboard_pages(client, victim.pk)
        for url in (
            f"/batches/{victim.pk}/row/",
            f"/batches/{victim.pk}/results/",
            f"/batches/{victim.pk}/cancel/",
            "/batches/new/",
            "/connections/",
            "/audit/",
            "/alerts/channels/",
        ):
            assert client.get(url).status_code == 200, url

        # Cancel goes to the API directly, not through Celery.
        response = client.post(f"/batches/{victim.pk}/cancel/", {"next": "/"})
        assert response.status_code == 302 and response["Location"] == "/"
        victim.refresh_from_db()
        assert victim.status == "cancelling"
        assert {b["id"]: b for b in simulator.batches()}[victim.batch_id]["status"] == "cancelling"
        assert "Cancellation requested" in client.get("/").content.decode()

        # The API moves on while Redis is down: the cancelled batch ends, others progress or finish.
        simulator.advance(seconds=1800)
        assert not _mirrors(simulator, connection)
        # Long enough for beat to miss ticks and the worker to lose its broker connection.
        time.sleep(max(0.0, 4 - (time.monotonic() - down_at)))
        fetch_dashboard_pages(client, victim.pk)
        assert worker.process.poll() is None and beat.poll() is None

        dedicated_redis.start()
        back_at = timezone.now()
        wait_until(lambda: _mirrors(simulator, connection), timeout=90, message="syncing to resume")
        connection.refresh_from_db()
        assert connection.last_success_at > back_at
        victim.refresh_from_db()
        assert victim.status == "cancelled"
        assert worker.process.poll() is None and beat.poll() is None
    finally:
        stop_process_group(beat)
        worker.stop()
