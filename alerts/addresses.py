"""Whether a channel's URL points inside the network the dashboard runs in.

Any signed-in user may add a webhook for themselves, and the workers then POST to it: without a
check, a viewer could make the dashboard send requests to internal services (server-side request
forgery), such as a cloud's metadata address or an admin API on localhost. Channels of admins, team
channels (which only admins manage) and deployments that set ALERTS_ALLOW_INTERNAL_URLS may post
anywhere; other personal channels only to public addresses.

The host is resolved when the channel is saved and again before every send. A name that resolves
differently between that check and the connection (DNS rebinding) is not covered.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from accounts.roles import ADMIN, role_of
from alerts.models import Channel


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def internal_address(url: str) -> str | None:
    """The first internal address the URL's host stands for, or None when all are public (or the
    host does not resolve: the send then fails on its own)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError):
        return None
    for _family, _type, _proto, _name, sockaddr in found:
        if _is_internal(str(sockaddr[0])):
            return str(sockaddr[0])
    return None


def may_post_internally(channel: Channel) -> bool:
    if settings.ALERTS_ALLOW_INTERNAL_URLS or channel.user_id is None:
        return True
    return role_of(channel.user) == ADMIN


def refusal(channel: Channel) -> str | None:
    """Why this channel may not post to its URL, or None when it may."""
    if not channel.url or may_post_internally(channel):
        return None
    address = internal_address(channel.url)
    if address is None:
        return None
    return (
        f"the URL leads to an internal address ({address}); only admins' and team channels may post "
        "there (or set ALERTS_ALLOW_INTERNAL_URLS=1)"
    )
