"""The simulator checks requests as the real API does (authentication, unknown paths and methods,
batch parameters) and pages lists newest first with cursors."""

from __future__ import annotations

from typing import Any

import httpx

from simulator.state import SimWorld
from tests.simulator.support import T0, Sim, assert_error, chat_lines


def test_authentication_is_required_and_checked() -> None:
    running = Sim(SimWorld(seed=1, batches=3, speed=0, start=T0), api_key="sk-right-key-1234")
    try:
        anonymous = httpx.get(running.base_url + "/batches")
        error = assert_error(anonymous, 401)
        assert error["message"].startswith("You didn't provide an API key.")
        wrong = httpx.get(running.base_url + "/batches", headers={"Authorization": "Bearer sk-nope-5678"})
        assert assert_error(wrong, 401)["code"] == "invalid_api_key"
        assert "sk-nope-5678" not in wrong.text
        right = httpx.get(
            running.base_url + "/batches", headers={"Authorization": "Bearer sk-right-key-1234"}
        )
        assert right.status_code == 200
        azure = httpx.get(running.base_url + "/batches", headers={"api-key": "sk-right-key-1234"})
        assert azure.status_code == 200
        assert httpx.get(running.root + "/_sim/state").status_code == 200
    finally:
        running.close()
    open_sim = Sim(SimWorld(seed=1, batches=1, speed=0, start=T0))
    try:
        any_key = httpx.get(open_sim.base_url + "/batches", headers={"Authorization": "Bearer x"})
        assert any_key.status_code == 200
        empty = httpx.get(open_sim.base_url + "/batches", headers={"Authorization": "Bearer"})
        assert empty.status_code == 401
        basic = httpx.get(open_sim.base_url + "/batches", headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401
    finally:
        open_sim.close()


def test_unknown_things_get_the_real_404_and_405_shapes(sim: Sim) -> None:
    assert_error(sim.api.get("/batches/batch_nope"), 404, "No batch found with id 'batch_nope'.")
    assert_error(sim.api.post("/batches/batch_nope/cancel"), 404, "No batch found with id 'batch_nope'.")
    assert_error(sim.api.get("/files/file-nope"), 404, "No such File object: file-nope")
    assert_error(sim.api.get("/nothing/here"), 404, "Invalid URL (GET /v1/nothing/here)")
    response = sim.api.delete("/batches")
    assert_error(response, 405)
    assert response.headers["allow"] == "GET, POST"
    for response in (sim.api.get("/batches"), sim.api.get("/batches/nope"), sim.control.get("/_sim/state")):
        assert response.headers["x-request-id"].startswith("req_")
        assert int(response.headers["openai-processing-ms"]) >= 0


def test_batch_creation_parameters_are_validated(sim: Sim) -> None:
    file_id = sim.upload(chat_lines(2))["id"]
    good = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}

    def post(body: Any) -> dict[str, Any]:
        response = sim.api.post("/batches", json=body)
        assert response.status_code in (400, 404), response.text
        return response.json()["error"]

    assert post({**good, "endpoint": None})["code"] == "missing_required_parameter"
    assert post({k: v for k, v in good.items() if k != "input_file_id"})["param"] == "input_file_id"
    assert post({**good, "endpoint": "/v1/fine_tuning"})["code"] == "invalid_value"
    assert post({**good, "completion_window": "48h"})["param"] == "completion_window"
    assert post({**good, "metadata": {str(n): "v" for n in range(17)}})["param"] == "metadata"
    assert post({**good, "metadata": {"k" * 65: "v"}})["code"] == "string_above_max_length"
    assert post({**good, "metadata": {"k": "v" * 513}})["code"] == "string_above_max_length"
    assert post({**good, "metadata": {"k": 1}})["code"] == "invalid_type"
    late = {"anchor": "created_at", "seconds": 100}
    assert post({**good, "output_expires_after": late})["code"] == "integer_below_min_value"
    assert post({**good, "color": "blue"})["message"] == "Unrecognized request argument supplied: color"
    assert post({**good, "input_file_id": "file-missing"})["message"] == "No such File object: file-missing"
    notes = sim.upload("x", filename="n.txt", purpose="user_data")["id"]
    assert post({**good, "input_file_id": notes})["param"] == "input_file_id"
    response = sim.api.post("/batches", content=b"{not json", headers={"Content-Type": "application/json"})
    assert assert_error(response, 400)["message"].startswith("We could not parse the JSON body")
    fine = {**good, "metadata": {"k" * 64: "v" * 512}}
    fine["output_expires_after"] = {"anchor": "created_at", "seconds": 3600}
    assert sim.api.post("/batches", json=fine).status_code == 200


def test_list_pagination_is_newest_first_with_cursors(sim: Sim) -> None:
    first = sim.api.get("/batches").json()
    assert first["object"] == "list" and len(first["data"]) == 20 and first["has_more"]
    assert first["first_id"] == first["data"][0]["id"] and first["last_id"] == first["data"][-1]["id"]
    seen, after = [], None
    while True:
        page = sim.api.get("/batches", params={"limit": 7, **({"after": after} if after else {})}).json()
        seen.extend(page["data"])
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert len(seen) == 40 and len({b["id"] for b in seen}) == 40
    assert [b["created_at"] for b in seen] == sorted((b["created_at"] for b in seen), reverse=True)
    assert [b["id"] for b in seen] == [b["id"] for b in sim.control.get("/_sim/state").json()["batches"]]
    last = sim.api.get("/batches", params={"after": seen[-2]["id"], "limit": 5}).json()
    assert [b["id"] for b in last["data"]] == [seen[-1]["id"]] and last["has_more"] is False
    end = sim.api.get("/batches", params={"after": seen[-1]["id"]}).json()
    assert end["data"] == [] and end["has_more"] is False and end["first_id"] is None
    exact = sim.api.get("/batches", params={"limit": 40}).json()
    assert len(exact["data"]) == 40 and exact["has_more"] is False
    assert len(sim.api.get("/batches", params={"limit": 100}).json()["data"]) == 40

    created = sim.create(sim.upload(chat_lines(1))["id"])
    assert sim.api.get("/batches", params={"limit": 1}).json()["data"][0]["id"] == created["id"]

    assert (
        assert_error(sim.api.get("/batches", params={"limit": 0}), 400)["code"] == "integer_below_min_value"
    )
    assert assert_error(sim.api.get("/batches", params={"limit": 101}), 400)["param"] == "limit"
    assert assert_error(sim.api.get("/batches", params={"limit": "ten"}), 400)["code"] == "invalid_type"
    # An `after` that names no batch is refused rather than silently ending the listing.
    unknown = sim.api.get("/batches", params={"after": "batch_unknown"})
    assert assert_error(unknown, 400)["param"] == "after"
    assert assert_error(sim.api.get("/files", params={"limit": 10_001}), 400)["param"] == "limit"
    assert assert_error(sim.api.get("/files", params={"order": "up"}), 400)["param"] == "order"
