"""The team deployment of the README, started from the files in deploy/ on loopback.

Nothing here is configured for the test beyond what a team fills in: the environment starts from
deploy/env.example, the processes are the ExecStart lines of deploy/systemd/*.service (with the
install folder /srv/batch-dashboard mapped to this checkout), nginx serves deploy/nginx/batch-dashboard.conf
rendered by deploy/render.py, and deploy/release.sh prepares the database and static files. What differs
is only what a real machine would have: addresses and ports on loopback, a throw-away certificate,
a fresh PostgreSQL database and a private Redis.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from tests.conftest import free_port, wait_for_port
from tests.support.processes import stop_process_group

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
INSTALL_ROOT = "/srv/batch-dashboard"
HOST = "localhost"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as systemd's EnvironmentFile= reads them (comments and blanks skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Unit:
    name: str
    working_directory: Path
    argv: list[str]


def read_unit(path: Path, env: dict[str, str], instance: str = "") -> Unit:
    """The command a systemd unit runs: its ExecStart with ${VAR} from the environment file and the
    specifiers %i (instance) and %H (host name) expanded, as systemd would."""
    service: dict[str, str] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            service[key.strip()] = value.strip()

    def expand(text: str) -> str:
        text = text.replace("%i", instance).replace("%H", socket.gethostname()).replace("%%", "%")
        text = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], text)
        return text.replace(INSTALL_ROOT, str(REPO))

    return Unit(
        name=path.stem.replace("@", instance),
        working_directory=Path(expand(service["WorkingDirectory"])),
        argv=[expand(part) for part in shlex.split(service["ExecStart"])],
    )


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str]
    https_port: int
    http_port: int
    gunicorn_port: int
    events_port: int
    cert: Path
    simulator_port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.https_port}"

    def secrets(self) -> list[str]:
        """Every secret the deployment holds: none may appear in any log of any process."""
        names = (
            "DJANGO_SECRET_KEY",
            "DASHBOARD_ENCRYPTION_KEY",
            "OPENAI_API_KEY",
            "OPENAI_WEBHOOK_SECRET",
            "ADMIN_PASSWORD",
        )
        return [self.env[name] for name in names if self.env.get(name)]

    def start(self, name: str, argv: list[str], cwd: Path) -> subprocess.Popen:
        log = self.workdir / f"{name}.log"
        self.logs[name] = log
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=self.env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def start_unit(self, filename: str, instance: str = "") -> subprocess.Popen:
        unit = read_unit(DEPLOY / "systemd" / filename, self.env, instance)
        return self.start(unit.name, unit.argv, unit.working_directory)

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [str(REPO / ".venv" / "bin" / "python"), "manage.py", *args],
            cwd=REPO,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def wait_for_log(self, name: str, marker: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.logs[name].read_text(errors="replace"):
                return
            if self.processes[name].poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not log {marker!r}:\n{self.logs[name].read_text(errors='replace')}")

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs.values() if path.exists())

    def stop(self) -> None:
        # Web and workers first, then nginx: the order systemd would stop them in.
        for process in reversed(list(self.processes.values())):
            stop_process_group(process, timeout=20)


def make_certificate(workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={HOST}",
            "-addext", f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def nginx_main_config(workdir: Path, site: Path) -> Path:
    """The part of nginx.conf that a Debian install already has (/etc/nginx/nginx.conf), pointed at
    the work folder so that no root-owned path is written. The site file is included untouched."""
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / "nginx" / folder).mkdir(parents=True, exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    config = workdir / "nginx" / "nginx.conf"
    nginx_dir = workdir / "nginx"
    config.write_text(
        f"""{user}worker_processes 1;
pid {nginx_dir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {workdir}/nginx-access.log;
    client_body_temp_path {nginx_dir}/body;
    proxy_temp_path {nginx_dir}/proxy;
    fastcgi_temp_path {nginx_dir}/fastcgi;
    uwsgi_temp_path {nginx_dir}/uwsgi;
    scgi_temp_path {nginx_dir}/scgi;
    include {site};
}}
"""
    )
    return config


def nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("nginx is not installed; `make test-deploy` installs it")


def start_stack(workdir: Path, database_url: str, redis_url: str) -> Stack:
    cert, key = make_certificate(workdir)
    https_port, http_port, gunicorn_port, events_port, simulator_port = (free_port() for _ in range(5))
    redis_base = redis_url.rsplit("/", 1)[0]

    env = {
        "PATH": f"{REPO / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        **read_env_file(DEPLOY / "env.example"),
    }
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS=HOST,
        DJANGO_CSRF_TRUSTED_ORIGINS=f"https://{HOST}:{https_port}",
        DASHBOARD_URL=f"https://{HOST}:{https_port}",
        DATABASE_URL=database_url,
        # Databases 2 and 3: the tests' own cache uses 1, and Celery's queues must not meet it.
        REDIS_URL=f"{redis_base}/2",
        DASHBOARD_CACHE_REDIS_URL=f"{redis_base}/3",
        DASHBOARD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        DASHBOARD_BIND=f"127.0.0.1:{gunicorn_port}",
        DASHBOARD_EVENTS_BIND=f"127.0.0.1:{events_port}",
        WEB_CONCURRENCY="2",
        CELERY_WORKER_CONCURRENCY="1",
        GUNICORN_ACCESS_LOG="-",
        # The environment's connection, against the simulator (a loopback address the operator set).
        OPENAI_API_KEY="sk-deploy-" + secrets.token_hex(16),
        OPENAI_BASE_URL=f"http://127.0.0.1:{simulator_port}/v1",
        # Quicker than the defaults so that the tests see syncs within seconds.
        SYNC_DISPATCH_INTERVAL="1",
        OPENAI_WEBHOOK_SECRET="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        ADMIN_PASSWORD=secrets.token_urlsafe(16),
    )
    stack = Stack(workdir, env, https_port, http_port, gunicorn_port, events_port, cert, simulator_port)
    try:
        stack.start(
            "simulator",
            [
                sys.executable, "manage.py", "simulate_api", "--port", str(simulator_port),
                "--batches", "40", "--seed", "3", "--api-key", env["OPENAI_API_KEY"],
            ],
            REPO,
        )  # fmt: skip
        wait_for_port(simulator_port, timeout=60, process=stack.processes["simulator"])

        release = subprocess.run(
            ["bash", str(DEPLOY / "release.sh")],
            cwd=REPO,
            env={**env, "PYTHON": str(REPO / ".venv" / "bin" / "python")},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if release.returncode != 0:
            raise RuntimeError(f"deploy/release.sh failed:\n{release.stdout}\n{release.stderr}")
        stack.manage("create_user", "admin", "--role", "admin", "--password-env", "ADMIN_PASSWORD")

        web = stack.start_unit("batch-dashboard-web.service")
        wait_for_port(gunicorn_port, timeout=60, process=web)
        events = stack.start_unit("batch-dashboard-events.service")
        wait_for_port(events_port, timeout=60, process=events)
        for instance in ("1", "2"):
            stack.start_unit("batch-dashboard-worker@.service", instance)
        stack.start_unit("batch-dashboard-beat.service")
        for instance in ("1", "2"):
            stack.wait_for_log(f"batch-dashboard-worker{instance}", " ready.")

        site = workdir / "batch-dashboard.conf"
        rendered = subprocess.run(
            [sys.executable, str(DEPLOY / "render.py"), str(DEPLOY / "nginx" / "batch-dashboard.conf")],
            env={
                **env,
                "DASHBOARD_SERVER_NAME": HOST,
                "DASHBOARD_TLS_CERT": str(cert),
                "DASHBOARD_TLS_KEY": str(key),
                "DASHBOARD_UPSTREAM": f"127.0.0.1:{gunicorn_port}",
                "DASHBOARD_EVENTS_UPSTREAM": f"127.0.0.1:{events_port}",
                "DASHBOARD_HTTP_LISTEN": f"127.0.0.1:{http_port}",
                "DASHBOARD_HTTPS_LISTEN": f"127.0.0.1:{https_port}",
                "DASHBOARD_STATIC_ROOT": str(REPO / "var" / "static"),
            },
            capture_output=True,
            text=True,
            check=True,
        )
        site.write_text(rendered.stdout)
        config = nginx_main_config(workdir, site)
        test = subprocess.run([nginx_binary(), "-t", "-c", str(config)], capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"nginx -t refused the rendered site:\n{test.stderr}")
        nginx = stack.start("nginx", [nginx_binary(), "-c", str(config), "-g", "daemon off;"], workdir)
        wait_for_port(https_port, timeout=60, process=nginx)
        stack.logs["nginx-error"] = workdir / "nginx-error.log"
        stack.logs["nginx-access"] = workdir / "nginx-access.log"
    except BaseException:
        stack.stop()
        raise
    return stack
