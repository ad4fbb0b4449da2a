"""gunicorn's settings for the dashboard: gunicorn reads this file from the directory it starts in
(the repository root, as the README's deployment steps run it). Command-line options override it.

Open lists poll every few seconds over keep-alive connections, hence threads (gthread): a thread is
free again as soon as a poll is answered. reuse_port gives each worker its own listening socket, and
the kernel spreads new connections over them evenly: with one shared socket, whichever worker woke up
first accepted a burst of connections, and under load one worker could end up holding all of them
while the other idled (measured by benchmarks/bench_poll_load.py: half the throughput, at random).
"""

from typing import Any

from gunicorn.glogging import Logger

worker_class = "gthread"
threads = 4
reuse_port = True


class RedactingLogger(Logger):
    """gunicorn's own error and access logs do not propagate to the root logger, so Django's LOGGING
    and its redaction filter never see them; yet the access log holds URLs and the error log quotes
    malformed requests and exceptions. setup() runs again on every reload (SIGHUP), hence here."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        from dashboard.redaction import redact_handlers_of

        redact_handlers_of(self.error_log, self.access_log)


logger_class = RedactingLogger
