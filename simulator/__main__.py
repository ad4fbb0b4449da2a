"""`python -m simulator [options]`: the simulator as a process, without Django (see `cli`)."""

import sys

from simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
