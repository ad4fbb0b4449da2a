"""Sending one notification through one channel: the only module here that talks to the outside.

Errors come back as SendError with a message fit for the failures page and the logs: a status code or
the kind of failure, never the channel's URL (Slack and many webhook URLs carry a token in their path)
nor its secret.
"""

from __future__ import annotations

import json
import smtplib
from datetime import datetime
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail

from alerts import addresses, events, signing
from alerts.models import Channel, SecretUnavailable
from dashboard import outbound
from dashboard.redaction import redact, register_secret

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "batch-dashboard-alerts/1"


class SendError(Exception):
    pass


def message_id(delivery_pk: int) -> str:
    # The same id on every attempt, so that a receiver can drop a repeat of a delivery it already has.
    return f"dlv_{delivery_pk}"


def url_problem(url: str) -> str | None:
    """Why this URL cannot be posted to, or None. httpx.URL is the parser httpx.post itself uses, so a
    URL the form accepts with this check is one the sender can send to (Django's URLField takes
    "http://☃.com/", which httpx refuses). The reason never quotes the URL."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as error:  # IDNA errors are ValueErrors
        return f"httpx cannot send to it ({type(error).__name__}: its host name or port is not valid)"
    if parsed.scheme not in ("http", "https"):
        return "it is not an http:// or https:// URL"
    if not parsed.host:
        return "it names no host"
    return None


def _revealed(read: Any) -> str:
    try:
        return read()
    except SecretUnavailable as error:
        raise SendError(str(error)) from None


def send(
    channel: Channel, delivery_pk: int, payload: dict[str, Any], *, now: datetime, sent_as: str = ""
) -> None:
    """`sent_as` is the message id when what is sent is not a Delivery (spend.budget_alerts)."""
    if channel.kind == Channel.Kind.WEBHOOK:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        secret = _revealed(lambda: channel.secret)
        register_secret(secret)
        headers = {"content-type": "application/json"}
        if secret:
            headers |= signing.headers_for(secret, sent_as or message_id(delivery_pk), now, body)
        _post(channel, body, headers)
    elif channel.kind == Channel.Kind.SLACK:
        body = json.dumps(events.slack_message(payload)).encode()
        _post(channel, body, {"content-type": "application/json"})
    elif channel.kind == Channel.Kind.EMAIL:
        subject, text = events.email_message(payload)
        try:
            send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [channel.email], fail_silently=False)
        except (smtplib.SMTPException, OSError) as error:
            raise SendError(
                f"email not accepted: {type(error).__name__}: {redact(str(error))[:300]}"
            ) from None
    else:
        raise SendError(f"unknown channel kind {channel.kind!r}")


def _post(channel: Channel, body: bytes, headers: dict[str, str]) -> None:
    url = _revealed(lambda: channel.url)
    if not url:
        raise SendError("the channel has no URL")
    # The same check as the form's, before any name is resolved: a URL saved before the check existed,
    # or read from the environment, fails here with a reason instead of inside httpx.
    problem = url_problem(url)
    if problem:
        raise SendError(f"the channel's URL cannot be used: {problem}")
    # Checked again at every send (the name may resolve elsewhere now, or the owner lost the admin
    # role), and the post goes to the address checked here: a second lookup could answer otherwise.
    transport = outbound.PinnedTransport(
        allow_internal=addresses.may_post_internally(channel), verify=outbound.ssl_context()
    )
    try:
        transport.pin(url)
    except outbound.Refused as error:
        transport.close()
        raise SendError(addresses.refusal_message(error.address)) from None
    try:
        # Redirects are not followed: a receiver that moved should be reconfigured, and a redirect could
        # otherwise carry a signed body somewhere its owner never chose.
        with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
            response = client.post(url, content=body, headers={"user-agent": USER_AGENT, **headers})
    except httpx.TimeoutException:
        raise SendError("timed out") from None
    except httpx.HTTPError as error:
        # httpx messages may quote the URL; the class name says enough (ConnectError, ...).
        raise SendError(f"could not deliver: {type(error).__name__}") from None
    if not 200 <= response.status_code < 300:
        raise SendError(f"receiver answered HTTP {response.status_code}")
