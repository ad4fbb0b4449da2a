"""What the simulator's API tests share: a running simulator with clients for its API and its control
endpoints, the moves a batch's status may make, request files to upload, and the API's error shape."""

from __future__ import annotations

import json
from typing import Any

import httpx

from simulator.server import SimServer, start_in_thread, stop
from simulator.state import SimWorld

T0 = 1_760_000_000
ALLOWED_MOVES = {
    "validating": {"validating", "in_progress", "failed", "cancelling"},
    "in_progress": {"in_progress", "finalizing", "expired", "cancelling"},
    "finalizing": {"finalizing", "completed"},
    "cancelling": {"cancelling", "cancelled"},
    "completed": {"completed"},
    "failed": {"failed"},
    "expired": {"expired"},
    "cancelled": {"cancelled"},
}

TIMESTAMPS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


class Sim:
    """A running simulator and an authenticated client for it."""

    def __init__(self, world: SimWorld, *, api_key: str | None = None) -> None:
        self.world = world
        self.server: SimServer
        self.server, self.base_url = start_in_thread(world, api_key=api_key)
        self.root = self.base_url.removesuffix("/v1")
        self.api = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {api_key or 'sk-test'}"}
        )
        self.control = httpx.Client(base_url=self.root)

    def close(self) -> None:
        self.api.close()
        self.control.close()
        stop(self.server)

    def now(self) -> int:
        return self.control.post("/_sim/advance", json={"seconds": 0}).json()["now"]

    def advance_to(self, t: int) -> None:
        assert t >= self.now()
        self.control.post("/_sim/advance", json={"seconds": t - self.now()}).raise_for_status()

    def plan(self, batch_id: str) -> dict[str, Any]:
        return self.control.get(f"/_sim/plan/{batch_id}").json()

    def batch(self, batch_id: str) -> dict[str, Any]:
        response = self.api.get(f"/batches/{batch_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def upload(self, text: str, filename: str = "requests.jsonl", purpose: str = "batch") -> dict[str, Any]:
        response = self.api.post(
            "/files", files={"file": (filename, text.encode())}, data={"purpose": purpose}
        )
        assert response.status_code == 200, response.text
        return response.json()

    def create(self, file_id: str, endpoint: str = "/v1/chat/completions", **extra: Any) -> dict[str, Any]:
        body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", **extra}
        response = self.api.post("/batches", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def content(self, file_id: str) -> list[dict[str, Any]]:
        response = self.api.get(f"/files/{file_id}/content")
        assert response.status_code == 200, response.text
        assert len(response.content) == self.api.get(f"/files/{file_id}").json()["bytes"]
        return [json.loads(line) for line in response.text.splitlines()]

    def set_faults(self, **config: Any) -> None:
        self.control.post("/_sim/faults", json=config).raise_for_status()


def chat_lines(count: int, model: str = "gpt-4o-mini") -> str:
    return "".join(
        json.dumps(
            {
                "custom_id": f"ticket-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": model, "messages": [{"role": "user", "content": f"Case {n}"}]},
            }
        )
        + "\n"
        for n in range(count)
    )


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    if message is not None:
        assert error["message"] == message
    return error
