"""Fixtures of the simulator's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator.state import SimWorld
from tests.simulator.support import T0, Sim


@pytest.fixture
def sim() -> Iterator[Sim]:
    running = Sim(SimWorld(seed=7, batches=40, speed=0, start=T0))
    yield running
    running.close()
