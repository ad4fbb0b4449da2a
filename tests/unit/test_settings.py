import pytest

from dashboard import env


def test_it_parses_booleans_strictly(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env.env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "0")
    assert env.env_bool("FLAG", True) is False
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(env.ImproperlyConfiguredEnv, match="FLAG must be one of"):
        env.env_bool("FLAG", False)


def test_it_rejects_a_number_that_is_not_one(monkeypatch):
    monkeypatch.setenv("SECONDS", "15s")
    with pytest.raises(env.ImproperlyConfiguredEnv, match="SECONDS must be a number"):
        env.env_float("SECONDS", 1.0)
    monkeypatch.setenv("SECONDS", "-1")
    with pytest.raises(env.ImproperlyConfiguredEnv, match="at least 0"):
        env.env_int("SECONDS", 1, minimum=0)


def test_it_rejects_a_database_url_of_an_unknown_kind_without_echoing_it(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://root:hunter2@db/x")
    with pytest.raises(env.ImproperlyConfiguredEnv) as caught:
        env.env_url("DATABASE_URL", "", schemes=("sqlite", "postgres"))
    assert "hunter2" not in str(caught.value)
    assert "DATABASE_URL must start with one of sqlite://, postgres://" in str(caught.value)


def test_it_requires_a_host_in_a_redis_url(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://")
    with pytest.raises(env.ImproperlyConfiguredEnv, match="must name a host"):
        env.env_url("REDIS_URL", "", schemes=("redis",))


def test_it_splits_allowed_hosts(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", " a.example , b.example,, ")
    assert env.env_list("DJANGO_ALLOWED_HOSTS", []) == ["a.example", "b.example"]


def test_settings_refuse_to_start_without_a_secret_key_in_production(tmp_path):
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environment["DJANGO_DEBUG"] = "0"
    result = subprocess.run(
        [sys.executable, "-c", "import dashboard.settings"],
        env=environment,
        capture_output=True,
        text=True,
        cwd=os.getcwd(),
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def _settings_in_a_fresh_process(**variables: str):
    import json
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EMAIL_"))}
    environment.update(DJANGO_DEBUG="1", **variables)
    script = (
        "import json, dashboard.settings as s; print(json.dumps({k: getattr(s, k) for k in "
        "('EMAIL_HOST', 'EMAIL_PORT', 'EMAIL_USE_TLS', 'EMAIL_TIMEOUT', 'DEFAULT_FROM_EMAIL')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, cwd=os.getcwd()
    )
    return result.returncode, (json.loads(result.stdout) if result.returncode == 0 else result.stderr)


def test_email_settings_come_from_the_environment_with_a_timeout_by_default():
    code, values = _settings_in_a_fresh_process()
    assert code == 0
    assert values["EMAIL_TIMEOUT"] == 10.0  # never Django's wait-forever
    code, values = _settings_in_a_fresh_process(
        EMAIL_HOST="smtp.example.com",
        EMAIL_PORT="587",
        EMAIL_USE_TLS="true",
        DEFAULT_FROM_EMAIL="ops@example.com",
    )
    assert values == {
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_USE_TLS": True,
        "EMAIL_TIMEOUT": 10.0,
        "DEFAULT_FROM_EMAIL": "ops@example.com",
    }


def test_email_settings_refuse_tls_and_ssl_together_and_a_port_that_is_not_a_number():
    code, error = _settings_in_a_fresh_process(EMAIL_USE_TLS="1", EMAIL_USE_SSL="1")
    assert code != 0 and "not both" in error
    code, error = _settings_in_a_fresh_process(EMAIL_PORT="smtp")
    assert code != 0 and "EMAIL_PORT" in error
