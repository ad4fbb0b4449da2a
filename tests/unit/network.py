"""Helpers for fixtures that keep tests of outgoing requests on loopback: a guard that refuses (and
records) any connect to another address, and a fake resolver for invented names whose answers change
per lookup (to test that a request goes to the address that was checked, not to a later answer)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest


def guard_loopback(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every outgoing TCP connect of this process to a non-loopback address is refused; the list
    returned records the addresses that were tried."""
    attempts: list[str] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
            attempts.append(host)
            raise ConnectionRefusedError(f"test guard: no traffic to {host}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


class FakeDNS:
    """Answers for invented names, one answer per lookup (the last repeats); addresses pass through,
    and any other name fails without asking a real resolver."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: dict[str, int] = {}

    def set(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = list(answers)
        self.lookups[name] = 0


def install_fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in dns.answers:
            dns.lookups[name] += 1
            answers = dns.answers[name]
            addresses = answers.pop(0) if len(answers) > 1 else answers[0]
            result = []
            for address in addresses:
                ip = ipaddress.ip_address(address)
                af = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
                sockaddr = (address, int(port), 0, 0) if ip.version == 6 else (address, int(port))
                result.append((af, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
            return result
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            if name != "localhost":
                raise socket.gaierror(socket.EAI_NONAME, "not a name this test knows") from None
        return real(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns
