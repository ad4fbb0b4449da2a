"""The address of the client behind a request, for sign-in rate limits and the audit log.

Behind a proxy every request comes from the proxy's address, so five wrong passwords from anyone
would lock the real user out, and the audit log would show the proxy for everyone. The proxy names
the client in X-Forwarded-For, but any client can send that header too, so it is read only when the
request comes from a proxy listed in TRUSTED_PROXIES (DJANGO_TRUSTED_PROXIES).

The header is read from the right: each proxy appends the address it saw, so the right-most entry
that is not itself a trusted proxy is the first address no trusted party vouches for beyond. Entries
to its left were written by the client or by untrusted hops and are never believed.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _parse(value: str) -> Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [::1]:1234
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # 203.0.113.5:1234
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(request: HttpRequest) -> str | None:
    remote = _parse(str(request.META.get("REMOTE_ADDR") or ""))
    if remote is None:
        return None
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not networks or not _trusted(remote, networks):
        return str(remote)
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    # Bounded: a header of thousands of entries costs no more than its last few.
    for item in reversed(forwarded.split(",")[-20:]):
        address = _parse(item)
        if address is None:
            # An entry we cannot read: nothing to its left can be believed either.
            break
        if not _trusted(address, networks):
            return str(address)
        remote = address
    return str(remote)
