"""Test-only Celery code that writes secrets through every way a worker or beat process logs.

A test worker imports this module through CELERY_WORKER_INCLUDE (celery's `-I/--include`, read from
the environment), and a test beat uses `SecretLoggingScheduler` through CELERY_BEAT_SCHEDULER (its
`-S/--scheduler`), so that nothing in the production modules exists only for tests.
"""

from __future__ import annotations

import logging
import os
import sys

from celery import shared_task
from celery.beat import PersistentScheduler
from celery.utils.log import get_task_logger

task_logger = get_task_logger(__name__)
# Not __name__: get_task_logger() made that one a child of Celery's task logger.
module_logger = logging.getLogger("tests.plain_module_logger")


def write_everywhere(line: str, logger: logging.Logger) -> None:
    """The same line through the given logger, a plain module logger, print() and stderr."""
    logger.warning("from the Celery logger: %s", line)
    module_logger.warning("from a module logger: %s", line)
    print(f"from print(): {line}")
    print(f"from stderr: {line}", file=sys.stderr)


@shared_task(ignore_result=True)
def log_a_secret(line: str) -> None:
    write_everywhere(line, task_logger)


class SecretLoggingScheduler(PersistentScheduler):
    """Beat's own scheduler, which also writes REDACTION_TEST_LINE once beat has set up its logging."""

    def setup_schedule(self) -> None:
        super().setup_schedule()
        write_everywhere(os.environ["REDACTION_TEST_LINE"], logging.getLogger("celery.beat"))
        for handler in logging.getLogger().handlers:
            handler.flush()
