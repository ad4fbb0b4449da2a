"""The API client for a connection: its key, its configuration, and the environment's own connection.

Everything that needs to talk to the API for a connection gets its client here (client_for), so the
key's decryption and the outbound address check happen in one place.
"""

from __future__ import annotations

import os

from django.conf import settings

from batches import secrets
from batches.api.client import BatchAPIClient, ClientConfig
from batches.models import Connection
from dashboard import outbound
from dashboard.redaction import register_secret

ENVIRONMENT_CONNECTION_NAME = "default"


class ConnectionNotConfigured(Exception):
    """The connection has no usable key or URL."""


def api_key_for(connection: Connection) -> str:
    """The connection's key, from the environment or decrypted from the database; '' if none."""
    if connection.from_environment:
        api_key = settings.OPENAI_API_KEY
    elif connection.api_key_encrypted:
        try:
            api_key = secrets.decrypt(connection.api_key_encrypted)
        except secrets.EncryptionNotConfigured as error:
            raise ConnectionNotConfigured(f"Connection {connection.name!r}: {error}") from None
    elif connection.api_key_env:
        # Checked again at use: the rule may have tightened since the connection was saved.
        refused = secrets.env_name_refusal(connection.api_key_env)
        if refused:
            raise ConnectionNotConfigured(f"Connection {connection.name!r}: {refused}")
        api_key = os.environ.get(connection.api_key_env, "")
    else:
        api_key = ""
    register_secret(api_key)
    return api_key


def client_config_for(connection: Connection) -> ClientConfig:
    if connection.from_environment:
        base_url = settings.OPENAI_BASE_URL
        organization, project = settings.OPENAI_ORG_ID, settings.OPENAI_PROJECT_ID
    else:
        base_url, organization, project = connection.base_url, connection.organization, connection.project
    api_key = api_key_for(connection)
    if not api_key:
        where = (
            f"the environment variable {connection.api_key_env}"
            if connection.api_key_env and not connection.api_key_encrypted
            else "it"
        )
        raise ConnectionNotConfigured(f"Connection {connection.name!r} has no API key: set {where}.")
    if not base_url:
        raise ConnectionNotConfigured(f"Connection {connection.name!r} has no base URL.")
    return ClientConfig(
        base_url=base_url,
        api_key=api_key,
        organization=organization or None,
        project=project or None,
        auth_style="azure" if connection.provider == Connection.Provider.AZURE else "bearer",
        connect_timeout=settings.OPENAI_CONNECT_TIMEOUT,
        read_timeout=settings.OPENAI_READ_TIMEOUT,
        max_retries=settings.OPENAI_MAX_RETRIES,
    )


def may_reach_internal_addresses(connection: Connection) -> bool:
    # The environment's connection is the operator's own choice (and `make run` points it at the
    # simulator on loopback); connections added by admins reach internal addresses only if allowed.
    return connection.from_environment or settings.DASHBOARD_ALLOW_INTERNAL_API_URLS


def client_for(connection: Connection) -> BatchAPIClient:
    """A client whose every request goes to the address checked here (see dashboard/outbound.py)."""
    config = client_config_for(connection)
    transport = outbound.PinnedTransport(
        allow_internal=may_reach_internal_addresses(connection), verify=outbound.ssl_context()
    )
    try:
        transport.pin(config.base_url)
    except outbound.Refused as error:
        transport.close()
        raise ConnectionNotConfigured(
            f"Connection {connection.name!r}: {error}; set DASHBOARD_ALLOW_INTERNAL_API_URLS=1 to allow "
            "gateways on the internal network."
        ) from None
    return BatchAPIClient(config, transport=transport)


def environment_connection() -> Connection:
    """The connection configured by environment variables; it exists without any set-up (a migration
    creates it, and this recreates it should someone delete it)."""
    connection, _ = Connection.objects.get_or_create(
        name=ENVIRONMENT_CONNECTION_NAME,
        defaults={"from_environment": True, "api_key_env": "OPENAI_API_KEY"},
    )
    return connection


def is_configured(connection: Connection) -> bool:
    """The environment's connection without OPENAI_API_KEY is a placeholder: nothing to sync, nothing
    to report as failing."""
    return not connection.from_environment or bool(settings.OPENAI_API_KEY)
