"""gunicorn's settings for the dashboard: gunicorn reads this file from the directory it starts in
(the repository root, as the README's deployment steps run it). Command-line options override it.

Open lists poll every few seconds over keep-alive connections, hence threads (gthread): a thread is
free again as soon as a poll is answered. reuse_port gives each worker its own listening socket, and
the kernel spreads new connections over them evenly: with one shared socket, whichever worker woke up
first accepted a burst of connections, and under load one worker could end up holding all of them
while the other idled (measured by benchmarks/bench_poll_load.py: half the throughput, at random).
"""

worker_class = "gthread"
threads = 4
reuse_port = True

# gunicorn's own error and access logs do not reach Django's LOGGING: this logger masks keys in them.
logger_class = "dashboard.gunicorn_logging.RedactingLogger"
