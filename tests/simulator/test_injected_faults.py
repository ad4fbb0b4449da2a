"""The simulator misbehaves on request like the real API: rate limits with Retry-After, 5xx bodies,
writes that took effect before a 5xx, cut-off bodies, slow answers; all following their seed."""

from __future__ import annotations

import time

import httpx
import pytest

from simulator.faults import FaultConfig
from tests.simulator.support import Sim, chat_lines


def test_rate_limits_come_with_retry_after_headers(sim: Sim) -> None:
    sim.set_faults(rate_429=1.0, retry_after_seconds=2)
    response = sim.api.get("/batches")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2" and response.headers["retry-after-ms"] == "2000"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert response.headers["x-request-id"].startswith("req_")
    # Control endpoints never see faults.
    assert sim.control.get("/_sim/state").status_code == 200
    assert sim.control.get("/_sim/faults").json()["rate_429"] == 1.0
    sim.set_faults()
    assert sim.api.get("/batches").status_code == 200


def test_server_errors_are_5xx_with_the_real_bodies(sim: Sim) -> None:
    sim.set_faults(rate_5xx=1.0, seed=4)
    statuses = set()
    for _ in range(30):
        response = sim.api.get("/batches")
        statuses.add(response.status_code)
        if response.status_code == 502:
            assert response.headers["content-type"] == "text/html"
        else:
            assert response.json()["error"]["type"] == "server_error"
    assert statuses == {500, 502, 503}


def test_a_5xx_on_a_write_may_come_after_the_write_took_effect(sim: Sim) -> None:
    file_id = sim.upload(chat_lines(2))["id"]
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    count = len(sim.world.batch_ids())
    sim.set_faults(rate_5xx=1.0, rate_5xx_after_effect=0.0)
    assert sim.api.post("/batches", json=body).status_code >= 500
    assert len(sim.world.batch_ids()) == count
    sim.set_faults(rate_5xx=1.0, rate_5xx_after_effect=1.0)
    assert sim.api.post("/batches", json=body).status_code >= 500
    assert len(sim.world.batch_ids()) == count + 1
    sim.set_faults(rate_5xx=1.0, rate_5xx_after_effect=1.0)
    assert sim.api.get("/batches").status_code >= 500  # reads never have effects to speak of


def test_cut_off_bodies_are_seen_by_httpx_as_errors(sim: Sim) -> None:
    completed = next(b for b in sim.world.state()["batches"] if b["status"] == "completed")
    sim.set_faults(rate_cutoff=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        sim.api.get("/batches")
    with pytest.raises(httpx.RemoteProtocolError):
        sim.api.get(f"/files/{completed['output_file_id']}/content")
    sim.set_faults()
    assert sim.api.get("/batches").status_code == 200  # the client reconnects


def test_slow_responses_take_their_time(sim: Sim) -> None:
    sim.set_faults(rate_slow=1.0, slow_seconds=0.3)
    started = time.monotonic()
    response = sim.api.get("/batches", params={"limit": 1})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert int(response.headers["openai-processing-ms"]) >= 300


def test_faults_follow_their_seed(sim: Sim) -> None:
    def run() -> list[int]:
        sim.set_faults(rate_429=0.3, rate_5xx=0.3, seed=99)
        return [sim.api.get("/batches", params={"limit": 1}).status_code for _ in range(25)]

    first = run()
    assert first == run()
    assert {200, 429} <= set(first)


def test_bad_fault_settings_are_refused(sim: Sim) -> None:
    assert sim.control.post("/_sim/faults", json={"rate_429": 2}).status_code == 400
    assert sim.control.post("/_sim/faults", json={"nonsense": 1}).status_code == 400
    assert sim.control.post("/_sim/advance", json={"seconds": -5}).status_code == 400
    with pytest.raises(ValueError):
        FaultConfig(rate_429=0.7, rate_5xx=0.7)
