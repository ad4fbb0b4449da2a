"""What a notification says: the payload fixed when an event is noticed, and its rendering for Slack
and email. Pure functions over a batch row; no database, no network."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts.models import EVENT_LABELS
from batches.models import Batch


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def payload_for(batch: Batch, event: str, *, occurred_at: datetime, base_url: str = "") -> dict[str, Any]:
    """The JSON a generic webhook receives; Slack and email are rendered from it."""
    path = f"/batches/{batch.pk}/"
    return {
        "type": f"batch.{event}",
        "event": event,
        "occurred_at": occurred_at.isoformat(),
        "batch": {
            "id": batch.batch_id,
            "status": batch.status,
            "connection": batch.connection.name,
            "endpoint": batch.endpoint,
            "model": batch.model,
            "request_counts": {
                "total": batch.total_requests,
                "completed": batch.completed_requests,
                "failed": batch.failed_requests,
            },
            "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.expires_at),
            "eta_at": _iso(batch.eta_at),
            "last_progress_at": _iso(batch.last_progress_at),
            "metadata": batch.metadata or {},
        },
        "url": base_url.rstrip("/") + path if base_url else path,
    }


def summary(payload: dict[str, Any]) -> str:
    """One line in plain words, e.g. "Batch batch_abc (team-a) completed: 98 of 100 requests done,
    2 failed."""
    if "budget" in payload:  # spend.budget_alerts writes its own line
        return str(payload["summary"])
    batch = payload["batch"]
    counts = batch["request_counts"]
    event = payload["event"]
    head = f"Batch {batch['id']} ({batch['connection']}) {EVENT_LABELS.get(event, event)}"
    done = counts["completed"] + counts["failed"]
    tail = f"{done} of {counts['total']} requests done, {counts['failed']} failed"
    if event == "at_risk" and batch["eta_at"] and batch["expires_at"]:
        tail += f"; expected to finish at {batch['eta_at']}, after it expires at {batch['expires_at']}"
    elif event == "stalled" and batch["last_progress_at"]:
        tail += f"; no request has finished since {batch['last_progress_at']}"
    return f"{head}: {tail}."


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn gives these three characters a meaning (links, mentions); everything else is text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    text = _slack_escape(summary(payload))
    url = payload.get("url", "")
    if url.startswith(("http://", "https://")):
        text += f" <{_slack_escape(url)}|Open in the dashboard>"
    return {"text": text}


def email_message(payload: dict[str, Any]) -> tuple[str, str]:
    if "budget" in payload:
        subject = f"[Batch dashboard] budget {payload['budget']['name']}: {payload['budget']['threshold']}"
        return " ".join(subject.split()), f"{summary(payload)}\nLink: {payload.get('url', '')}\n"
    batch = payload["batch"]
    event = payload["event"]
    subject = f"[Batch dashboard] {batch['id']} {EVENT_LABELS.get(event, event)}"
    lines = [summary(payload), "", f"Connection: {batch['connection']}", f"Status: {batch['status']}"]
    if batch["endpoint"]:
        lines.append(f"Endpoint: {batch['endpoint']}")
    if batch["model"]:
        lines.append(f"Model: {batch['model']}")
    lines.append(f"Link: {payload.get('url', '')}")
    # Header injection: a subject must be one line whatever a batch id holds.
    return " ".join(subject.split()), "\n".join(lines) + "\n"
