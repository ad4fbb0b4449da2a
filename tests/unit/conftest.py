"""Unit tests: the pytest process only. Views through Django's test client, the API client against
respx or a simulator in a thread; no Celery worker, no browser, no server process of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.receivers import Receiver


@pytest.fixture(autouse=True)
def fast_password_hasher(settings) -> None:
    # Django's default hasher (PBKDF2, a million rounds) spends about half a second on every user a test
    # makes or signs in: half of this level's time. No unit test is about the hasher itself.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def hook() -> Iterator[Receiver]:
    """A webhook receiver on loopback that answers 200 to every delivery."""
    receiver = Receiver((200,))
    yield receiver
    receiver.close()
