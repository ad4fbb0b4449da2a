"""Fixtures of the connection security tests, scoped to this package: the autouse loopback guard must not
reach the rest of tests/unit, and `admin_client` here (a signed-in ADMIN user of this project) shadows
pytest-django's fixture of that name.

Nothing here leaves loopback: the `no_traffic_off_loopback` guard turns any connect to another address
into a refused connection (and records it), and `fake_dns` answers for invented names only.
"""

from __future__ import annotations

from typing import Any

import pytest

from accounts.roles import ADMIN
from tests.support.factories import make_user
from tests.unit.connection_security.support import PageServer
from tests.unit.network import FakeDNS, guard_loopback, install_fake_dns


@pytest.fixture(autouse=True)
def no_traffic_off_loopback(monkeypatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture
def fake_dns(monkeypatch) -> FakeDNS:
    return install_fake_dns(monkeypatch)


@pytest.fixture
def start_page_server():
    servers: list[PageServer] = []

    def start(*args: Any, **kwargs: Any) -> PageServer:
        servers.append(PageServer(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("ada", ADMIN))
    return client
