"""gunicorn's settings for the events server: the push doorbell's Server-Sent Events (/live/events/,
batches/views_events.py), behind the same nginx as the web server (deploy/nginx/batch-dashboard.conf
sends /live/events/ here). The systemd unit deploy/systemd/batch-dashboard-events.service passes
`dashboard.asgi_events --config deploy/gunicorn_events.conf.py`.

gunicorn's own ASGI worker (an asyncio loop, no thread per request): an open page holds one idle stream
for minutes, and one such process holds thousands of them, with one Redis subscription between them
(batches/live_events.py). One worker is enough for most teams; EVENTS_WORKERS adds more.
"""

import os

# Where nginx's events upstream points; loopback, never public.
bind = os.environ.get("DASHBOARD_EVENTS_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("EVENTS_WORKERS") or 1)
worker_class = "asgi"
# Open streams per worker (one per open page) before it stops accepting; the unit raises the open-file
# limit to match.
worker_connections = int(os.environ.get("EVENTS_WORKER_CONNECTIONS") or 10000)
reuse_port = True
# Streams end by themselves within LIVE_EVENTS_STREAM_SECONDS; on a restart they are cut after this and
# the browsers reconnect (and poll on their timer meanwhile).
graceful_timeout = 5
timeout = 60
errorlog = "-"
logger_class = "dashboard.gunicorn_logging.RedactingLogger"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" pid=%(p)s'
control_socket_disable = True
asgi_lifespan = "off"  # Django has no lifespan handlers
