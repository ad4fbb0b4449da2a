"""`make run`: the whole dashboard in one foreground command.

Starts (through honcho, a Procfile runner) the web server, the events server (the pages' push streams), a
Celery worker and beat, a private Redis when
none answers on REDIS_URL, and the built-in API simulator when no OPENAI_API_KEY is set. Ctrl-C stops
everything it started.
"""

from __future__ import annotations

import base64
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from honcho.manager import Manager

from batches.connections import ENVIRONMENT_CONNECTION_NAME

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-batches"


def free_port(preferred: int | None = None) -> int:
    if preferred:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def ensure_redis_server_installed() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if not shutil.which("apt-get"):
        raise CommandError("No Redis answers on REDIS_URL and redis-server is not installed.")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("Installing redis-server from the system packages ...", flush=True)
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=apt_env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=apt_env)
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    return found


def new_webhook_secret() -> str:
    """A Standard Webhooks secret, as OpenAI gives them: "whsec_" and the base64 of random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


CREATE_USER_HINT = "Create a user with: python manage.py create_user NAME --role admin"


def why_no_demo_user() -> str | None:
    """Why the demo superuser must not be made here, or None on the local default set-up.

    A superuser with a published password is only harmless on a developer's own machine: DEBUG on
    and the default SQLite file. `make run` with DJANGO_DEBUG=0 or a team's DATABASE_URL would
    otherwise hand admin rights to anyone who has read the README."""
    if not settings.DEBUG:
        return "DJANGO_DEBUG is off"
    default_file = Path(settings.VAR_DIR) / "db.sqlite3"
    parsed = dj_database_url.parse(settings.DATABASE_URL)
    is_sqlite = parsed["ENGINE"] == "django.db.backends.sqlite3"
    if not (is_sqlite and Path(parsed["NAME"]).resolve() == default_file.resolve()):
        # Name the setting only: the URL itself may carry a password.
        return f"DATABASE_URL is not the default local SQLite file ({default_file})"
    return None


def ensure_demo_user(out: Any) -> bool:
    """Makes the demo superuser on the local default set-up; elsewhere says why not and how to add
    a user. True when the demo login exists."""
    user_model = get_user_model()
    reason = why_no_demo_user()
    if reason is not None:
        out.write(f"Not creating the demo login: {reason}. {CREATE_USER_HINT}\n")
        existing = user_model.objects.filter(username=DEMO_USERNAME).first()
        if existing is not None and existing.check_password(DEMO_PASSWORD):
            # An earlier `make run` made it before this rule existed.
            out.write(
                f"Warning: the user {DEMO_USERNAME!r} exists and still has the demo password; "
                "deactivate it or change its password.\n"
            )
        return False
    if not user_model.objects.filter(username=DEMO_USERNAME).exists():
        user_model.objects.create_superuser(DEMO_USERNAME, "", DEMO_PASSWORD)
    return True


class Command(BaseCommand):
    help = "Run the web server, Celery worker and beat, Redis and the simulator in one command."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--simulated-batches", type=int, default=150)
        parser.add_argument("--simulator-speed", type=float, default=60.0)

    def handle(
        self, *args: Any, port: int, simulated_batches: int, simulator_speed: float, **options: Any
    ) -> None:
        var_dir: Path = settings.VAR_DIR
        python = shlex.quote(sys.executable)
        manage = shlex.quote(str(Path(settings.BASE_DIR) / "manage.py"))
        child_env = dict(os.environ)
        child_env.setdefault("DJANGO_DEBUG", "1")
        child_env["PYTHONUNBUFFERED"] = "1"
        processes: dict[str, str] = {}

        redis_url = settings.REDIS_URL
        if not redis_answers(redis_url):
            binary = ensure_redis_server_installed()
            redis_port = free_port()
            redis_dir = var_dir / "redis"
            redis_dir.mkdir(exist_ok=True)
            processes["redis"] = (
                f"exec {shlex.quote(binary)} --bind 127.0.0.1 --port {redis_port} "
                f"--dir {shlex.quote(str(redis_dir))} --save 60 1 --appendonly no"
            )
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            self.stdout.write(f"No Redis answered on REDIS_URL: starting a private one on {redis_url}")
        child_env["REDIS_URL"] = redis_url

        web_port = free_port(port)
        if not settings.OPENAI_API_KEY:
            sim_port = free_port()
            # Webhooks first, polling as the fallback: the simulator signs an OpenAI-style webhook for
            # every batch that finishes and posts it to the dashboard's endpoint for the environment's
            # connection, which refreshes that batch at once. The secret is made here unless set, and
            # reaches both through the environment (a flag would show in the process list).
            child_env.setdefault("OPENAI_WEBHOOK_SECRET", new_webhook_secret())
            webhook_url = f"http://127.0.0.1:{web_port}/webhooks/openai/{ENVIRONMENT_CONNECTION_NAME}/"
            processes["simulator"] = (
                f"exec {python} {manage} simulate_api --port {sim_port} "
                f"--batches {simulated_batches} --seed 1 --speed {simulator_speed} "
                f"--wall-clock-timestamps --webhook-url {shlex.quote(webhook_url)} "
                f"--state-file {shlex.quote(str(var_dir / 'simulator-state.json'))}"
            )
            child_env["OPENAI_API_KEY"] = "sk-simulator"
            child_env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{sim_port}/v1"
            self.stdout.write("No OPENAI_API_KEY set: watching the built-in API simulator.")
        else:
            self.stdout.write(f"Watching the OpenAI API at {settings.OPENAI_BASE_URL}")

        call_command("migrate", interactive=False, verbosity=0)
        demo_login = ensure_demo_user(self.stdout)

        processes["web"] = f"exec {python} {manage} runserver 127.0.0.1:{web_port} --noreload"
        # Push (batches/views_events.py): the events server as deployed (gunicorn's ASGI worker), on a
        # port of its own, since runserver cannot hold streams; the pages reach it there, allowed by CORS.
        # Unless the events URL was set: then whoever set it runs one.
        if "LIVE_EVENTS_URL" not in child_env:
            events_port = free_port(web_port + 1)
            child_env["LIVE_EVENTS_URL"] = f"http://127.0.0.1:{events_port}/live/events/"
            child_env.setdefault("LIVE_EVENTS_ALLOWED_ORIGINS", f"http://127.0.0.1:{web_port}")
            child_env["DASHBOARD_EVENTS_BIND"] = f"127.0.0.1:{events_port}"
            config = shlex.quote(str(Path(settings.BASE_DIR) / "deploy" / "gunicorn_events.conf.py"))
            processes["events"] = f"exec {python} -m gunicorn dashboard.asgi_events --config {config}"
        processes["worker"] = f"exec {python} -m celery -A dashboard worker --loglevel=INFO --concurrency=2"
        processes["beat"] = (
            f"exec {python} -m celery -A dashboard beat --loglevel=INFO "
            f"--schedule {shlex.quote(str(var_dir / 'celerybeat-schedule'))}"
        )

        host = urlsplit(child_env.get("OPENAI_BASE_URL", settings.OPENAI_BASE_URL)).netloc
        login = f"{DEMO_USERNAME} / {DEMO_PASSWORD}" if demo_login else "your own user (see above)"
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  Dashboard: http://127.0.0.1:{web_port}/\n"
                f"  Login:     {login}\n"
                f"  API:       {host}\n"
                f"  Push:      {child_env['LIVE_EVENTS_URL'] or 'off'}\n  Stop with Ctrl-C.\n"
            )
        )
        manager = Manager()
        for name, command in processes.items():
            manager.add_process(name, command, env=child_env, cwd=str(settings.BASE_DIR))
        manager.loop()
        sys.exit(manager.returncode)
