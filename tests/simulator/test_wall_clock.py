"""The simulator's wall-clock timestamps option: every time the API sends, also inside result files,
mapped onto the wall clock, in order, behind the real clock, and across a restart."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from simulator.state import SimWorld
from tests.simulator.support import ALLOWED_MOVES, T0, TIMESTAMPS, Sim, chat_lines

FILE_TIMES = ("created_at", "expires_at")
BATCH_TIMES = ("created_at", "expires_at", *TIMESTAMPS)
# The times each status path sets, in the order they happen (equal is fine after rounding).
PHASE_ORDERS = (
    ("created_at", "in_progress_at", "finalizing_at", "completed_at"),
    ("created_at", "failed_at"),
    ("created_at", "in_progress_at", "expired_at"),
    ("created_at", "expires_at"),
    ("created_at", "in_progress_at", "cancelling_at", "cancelled_at"),
    ("created_at", "cancelling_at", "cancelled_at"),
)


class FakeTime:
    """Stands in for the `time` module inside the simulator's clock and world: a wall clock tests move.

    With the wall clock still, a fast simulated clock moves only when a test advances it, so a
    world with and one without wall-clock timestamps can be compared at the same instant.
    """

    strftime = staticmethod(time.strftime)
    gmtime = staticmethod(time.gmtime)

    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.elapsed = 0.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.elapsed

    def pass_seconds(self, seconds: float) -> None:
        self.wall += seconds
        self.elapsed += seconds


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    from simulator import clock, state

    fake = FakeTime(T0)
    monkeypatch.setattr(clock, "time", fake)
    monkeypatch.setattr(state, "time", fake)
    return fake


def _on_wall(t: int | None, origin: int, speed: float) -> int | None:
    """The mapping the option promises: origin + (t - origin) / speed, to the nearest second."""
    return None if t is None else math.floor(origin + (t - origin) / speed + 0.5)


def _assert_mapped(
    shown: dict[str, Any], simulated: dict[str, Any], names: tuple[str, ...], speed: float
) -> None:
    for name in names:
        assert shown[name] == _on_wall(simulated[name], T0, speed), (name, shown, simulated)
    rest = {k: v for k, v in shown.items() if k not in names}
    assert rest == {k: v for k, v in simulated.items() if k not in names}


def _assert_in_order(batch: dict[str, Any]) -> None:
    for order in PHASE_ORDERS:
        times = [batch[name] for name in order if batch[name] is not None]
        assert times == sorted(times), (batch["id"], batch["status"], order, times)
    if batch["expired_at"] is not None:
        assert batch["expired_at"] == batch["expires_at"]


def test_wall_clock_timestamps_map_every_time_the_api_sends(wall: FakeTime) -> None:
    speed = 60.0
    shown = SimWorld(seed=3, batches=150, speed=speed, wall_clock_timestamps=True)
    plain = SimWorld(seed=3, batches=150, speed=speed)
    assert shown.origin == plain.origin == T0
    uploaded = {}
    for world in (shown, plain):
        file = world.create_file(filename="a.jsonl", purpose="batch", data=chat_lines(40).encode())
        batch = world.create_batch(
            {"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        )
        uploaded[world] = (file["id"], batch["id"])
    assert uploaded[shown] == uploaded[plain]
    statuses: set[str] = set()
    for step in range(12):
        state, simulated = shown.state(), plain.state()
        assert state["sim_now"] == simulated["now"] == shown.now()
        assert state["now"] == _on_wall(simulated["now"], T0, speed)
        assert state["wall_clock_timestamps"] and not simulated["wall_clock_timestamps"]
        assert len(state["batches"]) == len(simulated["batches"]) == 151
        for batch, original in zip(state["batches"], simulated["batches"], strict=True):
            statuses.add(batch["status"])
            _assert_mapped(batch, original, BATCH_TIMES, speed)
            _assert_in_order(batch)
            for name in ("created_at", *TIMESTAMPS):
                assert batch[name] is None or batch[name] <= state["now"]
        # The seeded past is compressed into the recent past, before the origin.
        if step == 0:
            created = [b["created_at"] for b in state["batches"][1:]]
            assert max(created) <= T0 and min(created) >= T0 - 16 * 86_400 / speed
        files, plain_files = shown.list_files(), plain.list_files()
        assert [f["id"] for f in files["data"]] == [f["id"] for f in plain_files["data"]]
        for file, original in zip(files["data"], plain_files["data"], strict=True):
            _assert_mapped(file, original, FILE_TIMES, speed)
            assert shown.get_file(file["id"]) == file
        for batch in state["batches"][:40]:
            assert shown.get_batch(batch["id"]) == batch
        shown.advance(2 * 3600)
        plain.advance(2 * 3600)
    assert statuses == set(ALLOWED_MOVES)
    # The 24 h window shows as 24 / speed hours.
    ours = shown.get_batch(uploaded[shown][1])
    assert ours["expires_at"] - ours["created_at"] == 86_400 / speed
    assert ours["status"] == "completed"


def test_wall_clock_timestamps_also_apply_to_times_inside_result_files(wall: FakeTime) -> None:
    speed = 60.0
    shown = SimWorld(seed=4, batches=60, speed=speed, wall_clock_timestamps=True)
    plain = SimWorld(seed=4, batches=60, speed=speed)
    completed = [
        b
        for b in plain.state()["batches"]
        if b["status"] == "completed" and b["output_file_id"] and b["request_counts"]["total"] <= 2_000
    ]
    checked = 0
    for batch in completed[:5]:
        presented = shown.get_batch(batch["id"])
        size, chunks = shown.open_file(batch["output_file_id"])
        data = b"".join(chunks)
        assert len(data) == size == plain.get_file(batch["output_file_id"])["bytes"]
        _, plain_chunks = plain.open_file(batch["output_file_id"])
        lines = [json.loads(line) for line in data.splitlines()]
        originals = [json.loads(line) for line in b"".join(plain_chunks).splitlines()]
        for line, original in zip(lines, originals, strict=True):
            body, plain_body = line["response"]["body"], original["response"]["body"]
            for name in ("created", "created_at"):
                if name in body:
                    assert body[name] == _on_wall(plain_body[name], T0, speed)
                    assert presented["in_progress_at"] <= body[name] <= presented["finalizing_at"]
                    checked += 1
    assert checked > 0


@pytest.mark.parametrize("speed", [0.0, 1.0])
def test_wall_clock_timestamps_change_nothing_at_speed_0_or_1(wall: FakeTime, speed: float) -> None:
    shown = SimWorld(seed=5, batches=80, speed=speed, start=T0, wall_clock_timestamps=True)
    plain = SimWorld(seed=5, batches=80, speed=speed, start=T0)
    for _ in range(3):
        state, simulated = shown.state(), plain.state()
        assert state.pop("wall_clock_timestamps") and not simulated.pop("wall_clock_timestamps")
        assert state == simulated
        assert shown.list_files() == plain.list_files()
        shown.advance(3 * 3600)
        plain.advance(3 * 3600)


def test_without_the_option_nothing_is_mapped(wall: FakeTime) -> None:
    world = SimWorld(seed=5, batches=80, speed=60)
    assert not world.wall_clock_timestamps
    world.advance(3600)
    state = world.state()
    assert state["now"] == state["sim_now"] == world.now() == T0 + 3600
    for batch in state["batches"]:
        plan = world.plan(batch["id"])
        assert batch["created_at"] == plan["created_at"]
        assert batch["expires_at"] == plan["expires_at"] == plan["created_at"] + 86_400
        if batch["completed_at"] is not None:
            assert batch["completed_at"] == plan["completed_at"]


def test_wall_clock_timestamps_over_http_match_the_state_and_advance_stays_simulated(
    wall: FakeTime,
) -> None:
    speed = 60.0
    running = Sim(SimWorld(seed=6, batches=130, speed=speed, wall_clock_timestamps=True))
    try:
        created = running.create(running.upload(chat_lines(20))["id"])
        assert created["created_at"] == T0
        assert running.now() == T0  # /_sim/advance answers in simulated seconds
        plan = running.plan(created["id"])
        assert plan["created_at"] == T0 and plan["expires_at"] == T0 + 86_400
        running.advance_to(plan["completed_at"])
        assert running.now() == plan["completed_at"]
        done = running.batch(created["id"])
        assert done["status"] == "completed"
        assert done["completed_at"] == _on_wall(plan["completed_at"], T0, speed)
        assert done["in_progress_at"] == _on_wall(plan["in_progress_at"], T0, speed)
        state = running.control.get("/_sim/state").json()
        assert state["sim_now"] == plan["completed_at"]
        assert state["now"] == _on_wall(plan["completed_at"], T0, speed)
        listed: list[dict[str, Any]] = []
        after = None
        while True:
            page = running.api.get(
                "/batches", params={"limit": 100, **({"after": after} if after else {})}
            ).json()
            listed.extend(page["data"])
            if not page["has_more"]:
                break
            after = page["last_id"]
        assert listed == state["batches"]  # field for field
        lines = running.content(done["output_file_id"])
        assert {line["response"]["body"]["created"] for line in lines} <= set(
            range(done["in_progress_at"], done["finalizing_at"] + 1)
        )
    finally:
        running.close()


def test_wall_clock_timestamps_stay_behind_the_real_clock() -> None:
    world = SimWorld(seed=1, batches=150, speed=60, wall_clock_timestamps=True)
    time.sleep(0.3)  # 18 simulated seconds
    file = world.create_file(filename="a.jsonl", purpose="batch", data=chat_lines(5).encode())
    batch = world.create_batch(
        {"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    )
    real = time.time()
    assert abs(file["created_at"] - real) <= 2 and abs(batch["created_at"] - real) <= 2
    assert world.now() - real > 10  # the simulated clock itself is well ahead
    state = world.state()
    assert abs(state["now"] - real) <= 2
    for item in state["batches"]:
        for name in ("created_at", *TIMESTAMPS):
            assert item[name] is None or item[name] <= real + 2
        assert item["expires_at"] - item["created_at"] == 86_400 // 60


def test_wall_clock_timestamps_survive_a_restart(wall: FakeTime, tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    world = SimWorld(seed=8, batches=60, speed=60, state_file=path, wall_clock_timestamps=True)
    wall.pass_seconds(600)  # ten wall minutes: ten simulated hours
    before = world.state()
    assert before["sim_now"] == T0 + 36_000 and before["now"] == T0 + 600
    world.save()
    wall.pass_seconds(3600)  # the simulator is down for an hour
    again = SimWorld.load(path, speed=60, wall_clock_timestamps=True)
    after = again.state()
    assert after["sim_now"] == T0 + 36_000  # the simulated clock resumes where it stopped
    assert after["now"] == T0 + 600 + 3600  # and is shown at the real time again
    later = 0
    for old, new in zip(before["batches"], after["batches"], strict=True):
        # What the API has shown keeps its value ...
        for name in ("created_at", *TIMESTAMPS):
            if old[name] is not None:
                assert new[name] == old[name], (name, old, new)
        # ... except a 24 h window still open: the hour the simulator was down is not in it.
        if new["expires_at"] != old["expires_at"]:
            assert old["expires_at"] > before["now"] and new["expires_at"] == old["expires_at"] + 3600
            later += 1
        _assert_in_order(new)
    assert later > 0
    wall.pass_seconds(60)
    assert again.state()["now"] == T0 + 600 + 3600 + 60
    # A restart at another speed keeps what was shown and maps what comes next at that speed.
    again.save()
    shown = again.state()
    third = SimWorld.load(path, speed=30, wall_clock_timestamps=True)
    assert third.state()["now"] == shown["now"]
    for old, new in zip(shown["batches"], third.state()["batches"], strict=True):
        assert {k: v for k, v in new.items() if k != "expires_at"} == {
            k: v for k, v in old.items() if k != "expires_at"
        }
    wall.pass_seconds(60)
    assert third.state()["now"] == shown["now"] + 60 and third.now() == shown["sim_now"] + 30 * 60
    # The option can be turned off again: the simulated times come back.
    plain = SimWorld.load(path, speed=30)
    assert plain.state()["now"] == plain.now() == T0 + 36_000 + 3600
