"""A faithful, standard-library-only simulator of the OpenAI Batch and Files APIs.

`state` holds the simulated world (files, batches, clock, seeding), `content` the JSONL formats,
`server` the HTTP layer with fault injection; `manage.py simulate_api` runs it as a process.
"""

from batches.simulator.server import FaultConfig, SimServer, make_server, start_in_thread, stop
from batches.simulator.state import ApiError, SimClock, SimWorld

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
