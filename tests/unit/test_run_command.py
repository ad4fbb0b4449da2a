"""`make run`'s command: the demo login it creates only for the local default database with DEBUG on."""

import io

import pytest
from django.contrib.auth import get_user_model

from batches.management.commands.run_dashboard import DEMO_USERNAME, ensure_demo_user
from tests.conftest import REPO

DEFAULT_DATABASE_URL = f"sqlite:///{REPO / 'var' / 'db.sqlite3'}"


@pytest.mark.django_db
def test_it_creates_the_demo_login_for_the_local_default(settings) -> None:
    settings.DEBUG = True
    settings.DATABASE_URL = DEFAULT_DATABASE_URL
    out = io.StringIO()
    assert ensure_demo_user(out) is True
    assert get_user_model().objects.get(username=DEMO_USERNAME).is_superuser


@pytest.mark.django_db
def test_it_refuses_the_demo_login_when_debug_is_off(settings) -> None:
    settings.DEBUG = False
    settings.DATABASE_URL = DEFAULT_DATABASE_URL
    out = io.StringIO()
    assert ensure_demo_user(out) is False
    assert not get_user_model().objects.filter(username=DEMO_USERNAME).exists()
    assert "DJANGO_DEBUG is off" in out.getvalue()
    assert "python manage.py create_user NAME --role admin" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "database_url",
    ["postgres://dashboard:secret@db.invalid:5432/dashboard", "sqlite:////srv/dashboard/db.sqlite3"],
)
def test_it_refuses_the_demo_login_on_any_other_database(settings, database_url: str) -> None:
    settings.DEBUG = True
    settings.DATABASE_URL = database_url
    out = io.StringIO()
    assert ensure_demo_user(out) is False
    assert not get_user_model().objects.filter(username=DEMO_USERNAME).exists()
    assert "DATABASE_URL is not the default" in out.getvalue()
    assert "python manage.py create_user NAME --role admin" in out.getvalue()
    assert "secret" not in out.getvalue()


@pytest.mark.django_db
def test_it_warns_when_a_skipped_demo_login_already_exists_with_its_known_password(settings) -> None:
    settings.DEBUG = False
    get_user_model().objects.create_superuser(DEMO_USERNAME, "", "demo-batches")
    out = io.StringIO()
    assert ensure_demo_user(out) is False
    assert "still has the demo password" in out.getvalue()
