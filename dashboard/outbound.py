"""Requests the dashboard sends to addresses chosen by its users: API connections and alert channels.

An admin chooses a connection's base URL and any user a personal webhook's URL; the server then sends
requests there from inside its own network. Two rules keep that from reaching internal services
(server-side request forgery: a cloud's metadata address, an admin API on localhost, a database):

- a host is resolved once, every address it stands for is checked (internal addresses are refused
  unless the caller allows them), and
- the connection is made to an address that was checked: the transport pins it, so a name that
  resolves elsewhere a moment later (DNS rebinding) cannot redirect the request. The Host header,
  TLS SNI and certificate verification keep the original host name, because httpcore still hands it
  to TLS; only the TCP connect goes to the pinned address.

No Django here: the alerts and the API client both use it, and it is tested on its own.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterable
from functools import lru_cache

import httpcore
import httpx

# httpx's own defaults.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class Refused(Exception):
    """The host stands for an internal address and the caller does not allow those."""

    def __init__(self, address: str) -> None:
        super().__init__(f"the URL leads to an internal address ({address})")
        self.address = address


class RefusedConnect(httpcore.ConnectError):
    """Refused, raised inside the transport: httpx turns it into an httpx.ConnectError, which every
    caller already handles as "could not connect", and nothing was sent."""


def is_internal(address: str) -> bool:
    """Whether an IP address is anything but a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of it
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address the kernel or a gateway may route to.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
        elif ip in _IPV4_COMPATIBLE:
            return True
    return not ip.is_global or ip.is_multicast


def host_and_port(url: str | httpx.URL) -> tuple[str, int]:
    """The host and port a request to `url` connects to, spelled as httpcore passes them to the
    network backend (IDNA-encoded, IPv6 without brackets, the scheme's default port filled in)."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    host = parsed.raw_host.decode("ascii").lower()
    if not host or parsed.scheme not in ("http", "https"):
        raise ValueError("not an http(s) URL with a host")
    return host, parsed.port or (443 if parsed.scheme == "https" else 80)


def resolve(host: str, port: int) -> tuple[str, ...]:
    """Every address the host stands for, in the resolver's order, without repeats. OSError when it
    does not resolve."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))


def first_internal(addresses: Iterable[str]) -> str | None:
    return next((address for address in addresses if is_internal(address)), None)


def internal_address(url: str) -> str | None:
    """The first internal address the URL's host stands for; None when all are public, or when the
    URL or its host cannot be resolved (a request to it then fails on its own, and the transport
    checks again when it connects)."""
    try:
        return first_internal(resolve(*host_and_port(url)))
    except (OSError, ValueError, UnicodeError, httpx.InvalidURL):
        return None


class PinnedBackend(httpcore.NetworkBackend):
    """Connects each (host, port) only to the addresses it resolved and checked the first time."""

    def __init__(self, *, allow_internal: bool) -> None:
        self.allow_internal = allow_internal
        self._pins: dict[tuple[str, int], tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self._inner = httpcore.SyncBackend()

    def pin(self, host: str, port: int) -> tuple[str, ...]:
        """The checked addresses of host:port: resolved and checked now unless already pinned.
        Raises Refused, or OSError when the name does not resolve (nothing is pinned then)."""
        key = (host.lower(), port)
        with self._lock:
            pinned = self._pins.get(key)
        if pinned is not None:
            return pinned
        addresses = resolve(host, port)
        if not addresses:
            raise OSError(f"{host} resolves to no address")
        if not self.allow_internal:
            internal = first_internal(addresses)
            if internal is not None:
                raise Refused(internal)
        with self._lock:
            # A concurrent first connect may have pinned already; the first answer wins for everyone.
            return self._pins.setdefault(key, addresses)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.pin(host, port)
        except Refused as error:
            raise RefusedConnect(str(error)) from None
        except (OSError, UnicodeError) as error:
            raise httpcore.ConnectError(f"cannot resolve the host: {error}") from None
        failure: Exception | None = None
        for address in addresses:
            try:
                # An address literal: the inner backend's own getaddrinfo only parses it.
                return self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for outbound requests")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport, with the connection pool's network backend swapped for PinnedBackend.

    `pin(url)` resolves and checks the URL's host up front, so that a refusal comes before any
    request (and with a clear message); a host first seen at connect time is checked then."""

    def __init__(
        self,
        *,
        allow_internal: bool,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        super().__init__(verify=context, limits=limits)
        self.backend = PinnedBackend(allow_internal=allow_internal)
        # HTTPTransport builds its pool without a way to pass a network backend; replace it with the
        # same pool on ours. (An environment proxy is mounted by httpx.Client beside this transport,
        # and then the proxy, chosen by the operator, makes the connection.)
        pool = self._pool
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )
        pool.close()

    def pin(self, url: str | httpx.URL) -> tuple[str, ...]:
        """Resolve and check now. Raises Refused; a URL without a host or a name that does not
        resolve pins nothing (the request then fails as a connection error, checked again)."""
        try:
            host, port = host_and_port(url)
        except (ValueError, UnicodeError, httpx.InvalidURL):
            return ()
        try:
            return self.backend.pin(host, port)
        except (OSError, UnicodeError):
            return ()


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~20 ms, paid again by every client (one per sync task) and every
    # transport; one context serves any number of them at once. It is httpx's own default, built the
    # first time. The API client, the connections' transports and the alert channels all share it.
    return httpx.create_ssl_context()
