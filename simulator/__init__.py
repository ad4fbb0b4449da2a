"""A faithful, standard-library-only simulator of the OpenAI Batch and Files APIs.

`state` holds the simulated world (its parts: `clock`, `lifecycle`, `files`, `seeding`, `errors`),
`content`, `templates`, `sources` and `validation` the JSONL files in the real formats, `server`
the HTTP layer (`endpoints`: what each route answers; `faults`: when a request misbehaves);
`cli` runs it as a process (`python -m simulator`, and `manage.py simulate_api` through Django).
Nothing here imports Django or the project's apps; README.md beside it says more.
"""

from simulator.clock import SimClock
from simulator.errors import ApiError
from simulator.faults import FaultConfig
from simulator.server import SimServer, make_server, start_in_thread, stop
from simulator.state import SimWorld

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
