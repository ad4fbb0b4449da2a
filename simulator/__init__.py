"""A faithful, standard-library-only simulator of the OpenAI Batch and Files APIs.

`state` holds the simulated world (files, batches, clock, seeding), `content` the JSONL formats,
`server` the HTTP layer with fault injection; `cli` runs it as a process (`python -m simulator`,
and `manage.py simulate_api` through Django). Nothing here imports Django or the project's apps.
"""

from simulator.server import FaultConfig, SimServer, make_server, start_in_thread, stop
from simulator.state import ApiError, SimClock, SimWorld

__all__ = [
    "ApiError",
    "FaultConfig",
    "SimClock",
    "SimServer",
    "SimWorld",
    "make_server",
    "start_in_thread",
    "stop",
]
