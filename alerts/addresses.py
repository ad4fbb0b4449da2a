"""Whether a channel's URL points inside the network the dashboard runs in.

Any signed-in user may add a webhook for themselves, and the workers then POST to it: without a
check, a viewer could make the dashboard send requests to internal services (server-side request
forgery), such as a cloud's metadata address or an admin API on localhost. Channels of admins, team
channels (which only admins manage) and deployments that set ALERTS_ALLOW_INTERNAL_URLS may post
anywhere; other personal channels only to public addresses.

The host is resolved when the channel is saved and again before every send, and the send connects to
the address that second check saw (dashboard/outbound.py pins it), so a name that resolves elsewhere
between the check and the connection (DNS rebinding) gains nothing.
"""

from __future__ import annotations

from django.conf import settings

from accounts.roles import ADMIN, role_of
from alerts.models import Channel
from dashboard import outbound


def internal_address(url: str) -> str | None:
    """The first internal address the URL's host stands for, or None when all are public (or the
    host does not resolve: the send then fails on its own)."""
    return outbound.internal_address(url)


def may_post_internally(channel: Channel) -> bool:
    if settings.ALERTS_ALLOW_INTERNAL_URLS or channel.user_id is None:
        return True
    return channel.user is not None and role_of(channel.user) == ADMIN


def refusal(channel: Channel) -> str | None:
    """Why this channel may not post to its URL, or None when it may."""
    if not channel.url or may_post_internally(channel):
        return None
    address = internal_address(channel.url)
    return None if address is None else refusal_message(address)


def refusal_message(address: str) -> str:
    return (
        f"the URL leads to an internal address ({address}); only admins' and team channels may post "
        "there (or set ALERTS_ALLOW_INTERNAL_URLS=1)"
    )
