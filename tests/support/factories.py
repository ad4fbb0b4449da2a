"""Rows for page tests, written the way the sync writes them."""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any

from django.utils import timezone

from batches.connections import environment_connection
from batches.models import Batch, Connection

_ids = count(1)


def make_connection(name: str = "team-a", **fields: Any) -> Connection:
    fields.setdefault("base_url", "http://127.0.0.1:9/v1")
    fields.setdefault("api_key_env", "TEAM_A_API_KEY")
    return Connection.objects.create(name=name, **fields)


def make_batch(connection: Connection | None = None, **fields: Any) -> Batch:
    connection = connection or environment_connection()
    now = timezone.now()
    number = next(_ids)
    status = fields.pop("status", "in_progress")
    defaults: dict[str, Any] = {
        "batch_id": f"batch_test{number:06d}",
        "status": status,
        "is_terminal": status in ("completed", "failed", "expired", "cancelled"),
        "endpoint": "/v1/chat/completions",
        "model": "gpt-4o-mini",
        "completion_window": "24h",
        "input_file_id": f"file-in{number}",
        "created_at": now - timedelta(minutes=number),
        "expires_at": now + timedelta(hours=23),
        "total_requests": 100,
        "completed_requests": 40,
        "failed_requests": 2,
        "metadata": {"project": "evals", "owner": "ana"},
        "observed_at": now,
        "first_seen_at": now,
        "last_synced_at": now,
        "last_changed_at": now,
    }
    defaults.update(fields)
    defaults.setdefault("raw", {"id": defaults["batch_id"], "status": status})
    return Batch.objects.create(connection=connection, **defaults)


def make_user(username: str, role: str = "viewer", password: str | None = None):
    from django.contrib.auth.models import User

    from accounts.roles import set_role

    user = User.objects.create_user(username, password=password or f"pw-{username}-1")
    set_role(user, role)
    return user
