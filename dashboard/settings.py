"""Django settings, read from the environment (see .env.example for every variable)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url

from dashboard.env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
    env_url,
)
from dashboard.redaction import register_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfiguredEnv(
            "DJANGO_SECRET_KEY is not set; set it, or set DJANGO_DEBUG=1 for local use"
        )
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "accounts",
    "batches",
    "alerts",
    "housekeeping",
    "spend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every view needs a signed-in user but those marked @login_not_required (sign-in, the OpenAI
    # webhook, /metrics with its token, the row poll with its own check: see the class).
    "batches.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-csp's, with the settings' policy built once (dashboard/csp.py).
    "dashboard.csp.SettingsPolicyCSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "batches.middleware.HtmxLoginRedirectMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into a clear 429 page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out username or address is refused before any password check.
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.RoleAwareModelBackend",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.roles.role_context",
            ],
        },
    },
]

DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
    schemes=("sqlite", "postgres", "postgresql"),
)
_database = dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the Celery workers write to the same file: WAL lets readers go on while a
    # worker writes, and IMMEDIATE transactions wait for the lock instead of failing mid-transaction.
    _database["OPTIONS"] = {
        # auto_vacuum takes effect in a new, empty file only (housekeeping's migration 0001 converts an
        # existing one); it lets housekeeping hand the pages of deleted rows back to the file system.
        # journal_size_limit cuts the write-ahead log back after a checkpoint resets it.
        "init_command": (
            "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            "PRAGMA journal_size_limit=67108864;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Tests run subprocesses (Celery workers) against the test database, so it must be a file.
    # One file per test run, so that two runs on one machine never share (and delete) it.
    _database["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Sessions live in the database only: every web process sees a sign-out at once, and nothing about
# who is signed in depends on Redis being up. (A per-process cache in front of them kept a stolen
# cookie working after sign-out in every other gunicorn worker.) One primary-key read per request,
# as one plain statement (accounts/sessions.py).
SESSION_ENGINE = "accounts.sessions"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Hardening --------------------------------------------------------------------------------
# Cookies are Secure in production (behind HTTPS); DJANGO_SECURE_COOKIES=0 only for a plain-HTTP trial.
_secure_cookies = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = _secure_cookies
CSRF_COOKIE_SECURE = _secure_cookies
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_HOURS", 12, minimum=1) * 3600
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
if env_bool("DJANGO_BEHIND_PROXY", False):
    # Only behind a proxy that sets this header itself; otherwise a client could claim HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The addresses of the proxies in front of the web server (addresses or networks, comma-separated).
# A request from one of them has its client's address taken from X-Forwarded-For, for sign-in rate
# limits and the audit log (dashboard/client_ip.py); from anywhere else the header is ignored, since
# any client can send one.
TRUSTED_PROXIES = env_networks("DJANGO_TRUSTED_PROXIES", [])
# No inline script anywhere: htmx and our own JS come from /static/. Inline style attributes are
# allowed for the progress bars' widths; the chart SVGs are inline markup, not script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}
# Sign-in rate limiting (django-axes): a username and address pair is locked after this many failures.
AXES_FAILURE_LIMIT = env_int("DASHBOARD_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("DASHBOARD_LOGIN_COOLOFF_MINUTES", 15.0, minimum=0.1) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The username as sent, cut to the length axes can store (see the function).
AXES_USERNAME_CALLABLE = "accounts.backends.axes_username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "locked_out.html"
AXES_ENABLED = env_bool("DASHBOARD_LOGIN_RATE_LIMIT", True)
AXES_VERBOSE = False
# The same address the audit log records: X-Forwarded-For only from a trusted proxy.
AXES_CLIENT_IP_CALLABLE = "dashboard.client_ip.client_ip"

# Keys of connections stored in the database are encrypted with this Fernet key (base64, 32 bytes);
# `python manage.py generate_encryption_key` prints a new one.
DASHBOARD_ENCRYPTION_KEY = env_str("DASHBOARD_ENCRYPTION_KEY")
# The environment variables a connection's key may be read from (a regular expression matched against
# the whole name): an admin names one, and its value is sent to the connection's host, so it must
# never be one of the server's own secrets. Variables the dashboard reads itself are refused whatever
# this says (batches/secrets.py).
DASHBOARD_API_KEY_ENV_PATTERN = (
    env_str("DASHBOARD_API_KEY_ENV_PATTERN")
    or r"(AZURE_)?OPENAI_[A-Z0-9_]+|[A-Z][A-Z0-9_]*_API_KEY(_[A-Z0-9_]+)?"
)
try:
    re.compile(DASHBOARD_API_KEY_ENV_PATTERN)
except re.error as _error:
    raise ImproperlyConfiguredEnv(
        f"DASHBOARD_API_KEY_ENV_PATTERN is not a valid regular expression: {_error}"
    ) from None
# Connections may reach only public addresses (dashboard/outbound.py), as the server would otherwise
# send requests into its own network for any admin; set this for a self-hosted gateway on the
# internal network. The connection configured by OPENAI_BASE_URL is the operator's and always may.
DASHBOARD_ALLOW_INTERNAL_API_URLS = env_bool("DASHBOARD_ALLOW_INTERNAL_API_URLS", False)

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"

# Celery: Redis is the broker; results are not needed (tasks write to the database).
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss"))
# The cache every process shares (figures cached for seconds, who was last checked polling); it
# misses rather than fails while Redis is down (dashboard/cache.py). Its own Redis database may be
# given so that clearing it never touches Celery's queues.
CACHE_REDIS_URL = env_url("DASHBOARD_CACHE_REDIS_URL", REDIS_URL, schemes=("redis", "rediss"))
CACHES = {
    "default": {
        "BACKEND": "dashboard.cache.ResilientRedisCache",
        "LOCATION": CACHE_REDIS_URL,
        "KEY_PREFIX": "dashboard",
        # A cache that answers slowly is worse than none: give up quickly and serve without it.
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1.0},
    }
}
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

# The connection configured by the environment. With no key the dashboard watches the built-in
# simulator, which `make run` starts and points OPENAI_BASE_URL at.
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
register_secret(OPENAI_API_KEY)
OPENAI_BASE_URL = env_url("OPENAI_BASE_URL", "https://api.openai.com/v1", schemes=("http", "https"))
OPENAI_ORG_ID = env_str("OPENAI_ORG_ID")
OPENAI_PROJECT_ID = env_str("OPENAI_PROJECT_ID")
OPENAI_CONNECT_TIMEOUT = env_float("OPENAI_CONNECT_TIMEOUT", 5.0, minimum=0.1)
OPENAI_READ_TIMEOUT = env_float("OPENAI_READ_TIMEOUT", 30.0, minimum=0.1)
OPENAI_MAX_RETRIES = env_int("OPENAI_MAX_RETRIES", 2, minimum=0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "dashboard.redaction.RedactingFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# An in-progress batch with no finished request for this long is shown as stalled.
STALLED_AFTER_MINUTES = env_int("STALLED_AFTER_MINUTES", 30, minimum=1)
# How long a row poll may reuse its check of who is polling (accounts/polls.py); 0 checks every poll.
POLL_AUTH_SECONDS = env_float("DASHBOARD_POLL_AUTH_SECONDS", 2.0, minimum=0.0)
# Results hold prompts and model output, so previews and the triage's messages and custom_ids need the
# operator role; a team whose viewers may read them sets this (downloads stay operator-only).
DASHBOARD_VIEWERS_SEE_RESULTS = env_bool("DASHBOARD_VIEWERS_SEE_RESULTS", False)

# Notifications (the alerts app): how often beat looks for events and sends what is due, the delay
# before the first retry of a failed send (doubling per attempt), and how many attempts are made.
ALERTS_INTERVAL = env_float("ALERTS_INTERVAL", 5.0, minimum=1.0)
ALERTS_RETRY_BACKOFF = env_float("ALERTS_RETRY_BACKOFF", 30.0, minimum=0.0)
ALERTS_MAX_ATTEMPTS = env_int("ALERTS_MAX_ATTEMPTS", 8, minimum=1)
# Personal channels of non-admins may post only to public addresses (alerts/addresses.py); set this
# where such webhooks legitimately live on the internal network.
ALERTS_ALLOW_INTERNAL_URLS = env_bool("ALERTS_ALLOW_INTERNAL_URLS", False)
# The environment variables a channel may read its URL or HMAC secret from (a regular expression
# matched against the whole name). The workers post to that URL and sign with that secret, so it must
# never admit the server's own secrets; the dashboard's own variables are refused whatever this says
# (alerts/environment.py).
ALERTS_ENV_NAME_PATTERN = env_str("ALERTS_ENV_NAME_PATTERN") or r"ALERT_[A-Z0-9_]+"
try:
    re.compile(ALERTS_ENV_NAME_PATTERN)
except re.error as _error:
    raise ImproperlyConfiguredEnv(
        f"ALERTS_ENV_NAME_PATTERN is not a valid regular expression: {_error}"
    ) from None
# Notifications link to the batch's page under this address when it is set (https://batches.example.com).
DASHBOARD_URL = env_str("DASHBOARD_URL")
# The signing secret ("whsec_...") of the OpenAI webhook endpoint; unset turns /webhooks/openai/ off.
OPENAI_WEBHOOK_SECRET = env_str("OPENAI_WEBHOOK_SECRET")
register_secret(OPENAI_WEBHOOK_SECRET)
# Email alerts go through this SMTP server (Django's names for the variables). The timeout keeps a
# hung mail server from holding a Celery worker: Django's default is to wait forever.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
register_secret(EMAIL_HOST_PASSWORD)
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfiguredEnv("Set EMAIL_USE_TLS (STARTTLS) or EMAIL_USE_SSL (implicit TLS), not both.")
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10.0, minimum=1.0)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "batch-dashboard@localhost")
# Prometheus scrapes /metrics with "Authorization: Bearer <this>"; unset turns /metrics off (404).
METRICS_TOKEN = env_str("METRICS_TOKEN")
register_secret(METRICS_TOKEN)

# Beat only ticks the dispatcher; each connection's own intervals decide what runs. Every second, so
# that a refresh starts within a second of being due (batches/schedule.py).
SYNC_DISPATCH_INTERVAL = env_float("SYNC_DISPATCH_INTERVAL", 1.0, minimum=1.0)
# After a failed sync (other than a 429, which says how long to wait) the connection waits this many
# seconds, doubling with each further failure up to 5 minutes.
SYNC_FAILURE_BACKOFF = env_float("SYNC_FAILURE_BACKOFF", 5.0, minimum=0.0)
# How long a sync run's Redis lock lives without renewal (it is renewed after every page).
SYNC_LOCK_TIMEOUT = env_int("SYNC_LOCK_TIMEOUT", 60, minimum=1)
# Live updates (batches/live.py, batches/pacing.py): a connection shown by a page that polled within
# LIVE_WATCH_SECONDS is refreshed at its own refresh interval, otherwise every SYNC_IDLE_REFRESH_SECONDS;
# never more than SYNC_API_CALLS_PER_MINUTE API calls in any minute. Each refresh records when the next
# is due and beat's dispatcher starts it then. A page poll answers from its
# change counter for at most LIVE_RECHECK_SECONDS before comparing its rows again (what only the clock
# changes: a batch becoming stalled).
LIVE_WATCH_SECONDS = env_int("LIVE_WATCH_SECONDS", 30, minimum=1)
LIVE_RECHECK_SECONDS = env_int("LIVE_RECHECK_SECONDS", 30, minimum=1)
# Push (batches/live_events.py): open pages keep a Server-Sent Events stream to the events server (an
# ASGI process of its own, deploy/gunicorn_events.conf.py) that says only "connection N changed", and
# poll at once. LIVE_EVENTS_URL is where pages find it: a path behind the same nginx in production; ""
# turns push off (pages poll on their timer, as they also do whenever the stream is down). An absolute
# URL (`make run`, where runserver and the events server listen on two ports) is also allowed by the CSP,
# and the events server answers the pages at LIVE_EVENTS_ALLOWED_ORIGINS with CORS.
LIVE_EVENTS_URL = env_str("LIVE_EVENTS_URL", "/live/events/")
LIVE_EVENTS_ALLOWED_ORIGINS = env_list("LIVE_EVENTS_ALLOWED_ORIGINS", [])
# A stream ends after this many seconds, so that the browser reconnects and is authenticated again (a
# signed-out session stops getting events), and says something every LIVE_EVENTS_HEARTBEAT_SECONDS so
# that proxies keep it open and a closed tab is noticed.
LIVE_EVENTS_STREAM_SECONDS = env_int("LIVE_EVENTS_STREAM_SECONDS", 180, minimum=1)
LIVE_EVENTS_HEARTBEAT_SECONDS = env_float("LIVE_EVENTS_HEARTBEAT_SECONDS", 15.0, minimum=0.1)
if LIVE_EVENTS_URL.startswith(("http://", "https://")):
    _events = urlsplit(LIVE_EVENTS_URL)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["connect-src"].append(f"{_events.scheme}://{_events.netloc}")
SYNC_IDLE_REFRESH_SECONDS = env_int("SYNC_IDLE_REFRESH_SECONDS", 60, minimum=1)
# Seconds between full syncs of a connection no page watches (its own full_sync_interval, 5 minutes by
# default, applies while watched): the refreshes list the newest page, where new batches appear.
SYNC_IDLE_FULL_SYNC_SECONDS = env_int("SYNC_IDLE_FULL_SYNC_SECONDS", 900, minimum=1)
SYNC_API_CALLS_PER_MINUTE = env_int("SYNC_API_CALLS_PER_MINUTE", 20, minimum=1)
# With acks_late, a message whose worker died is handed out again after this many seconds. Workers look
# for such messages every few seconds (kombu's default look is only every ~100 s).
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 600, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": max(1, min(10, CELERY_VISIBILITY_TIMEOUT // 4)),
    "unacked_restore_throttle": 1,
}
# Housekeeping (housekeeping/): how often beat runs it, and how long what it removes is kept. 0 days
# keeps for ever. Expired sessions, finished batches' surplus progress snapshots, webhook receipts past
# the replay window and django-axes' records past their cool-off need no setting.
DASHBOARD_HOUSEKEEPING_MINUTES = env_float("DASHBOARD_HOUSEKEEPING_MINUTES", 60.0, minimum=1.0)
DASHBOARD_AUDIT_RETENTION_DAYS = env_int("DASHBOARD_AUDIT_RETENTION_DAYS", 400, minimum=0)
DASHBOARD_ALERT_DELIVERY_RETENTION_DAYS = env_int("DASHBOARD_ALERT_DELIVERY_RETENTION_DAYS", 90, minimum=0)
DASHBOARD_BULK_CANCEL_RETENTION_DAYS = env_int("DASHBOARD_BULK_CANCEL_RETENTION_DAYS", 90, minimum=0)
CELERY_BEAT_SCHEDULE = {
    "dispatch-due-syncs": {
        "task": "batches.tasks.dispatch_due_syncs",
        "schedule": SYNC_DISPATCH_INTERVAL,
        "options": {"expires": SYNC_DISPATCH_INTERVAL},
    },
    "process-alerts": {
        "task": "alerts.tasks.process_alerts",
        "schedule": ALERTS_INTERVAL,
        "options": {"expires": ALERTS_INTERVAL},
    },
    "check-budgets": {
        "task": "spend.tasks.check_budgets",
        "schedule": ALERTS_INTERVAL,
        "options": {"expires": ALERTS_INTERVAL},
    },
}
CELERY_BEAT_SCHEDULE["housekeeping"] = {
    "task": "housekeeping.tasks.housekeeping",
    "schedule": DASHBOARD_HOUSEKEEPING_MINUTES * 60,
    "options": {"expires": DASHBOARD_HOUSEKEEPING_MINUTES * 60},
}
