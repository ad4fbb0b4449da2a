"""gunicorn's settings for the dashboard (the systemd unit deploy/systemd/batch-dashboard-web.service
passes `--config deploy/gunicorn.conf.py`; options on the command line override these).

Open lists poll every few seconds over keep-alive connections, hence threads (gthread): a thread is
free again as soon as a poll is answered. reuse_port gives each worker its own listening socket, and
the kernel spreads new connections over them evenly: with one shared socket, whichever worker woke up
first accepted a burst of connections, and under load one worker could end up holding all of them
while the other idled (measured by benchmarks/bench_poll_load.py: half the throughput, at random).
"""

import os

# Where nginx's upstream points (deploy/nginx/batch-dashboard.conf); loopback, never public.
bind = os.environ.get("DASHBOARD_BIND", "127.0.0.1:8000")
# Worker processes: gunicorn's own WEB_CONCURRENCY variable, else 2 per core is a fair start.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
worker_class = "gthread"
threads = 4
reuse_port = True
# A 200 MB upload is validated line by line in the request, and downloads are streamed: the same
# limit as nginx's proxy_read_timeout, so neither side gives up first.
timeout = 300
graceful_timeout = 30
# Errors and access lines to stderr, where systemd's journal collects them.
errorlog = "-"
# gunicorn's own error and access logs do not reach Django's LOGGING: this logger masks keys in them.
logger_class = "dashboard.gunicorn_logging.RedactingLogger"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# gunicorn's default line plus the worker's pid (which process answered is worth knowing with several).
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" pid=%(p)s'
# gunicorn's control socket (gunicornc) is not used: systemd signals the master. Without this, every
# instance would share $HOME/.gunicorn/gunicorn.ctl, which ProtectHome= also makes unwritable.
control_socket_disable = True
