"""A year of a busy team, written fast and the way the sync would have written it: for bench_year.py.

Every day `per_day` batches are created across the three connections (fakedata.CONNECTIONS), their
sizes log-uniform from 10 to 50,000 requests and their speeds log-uniform from 20 to 2,000 requests a
minute, so that most run minutes and a few run most of a day (at most 23 hours; a slow one expires at
24). While a batch runs, a progress snapshot is stored at every 5 s refresh in which its counts moved
(a page watches it), as batches/writer.py does; its status changes are stored as the writer stores
them; its final state is the API object run through ApiBatch and the writer's own INSERT (NEW_BATCH),
so each row holds what a real sync would. Batches created in the last day may still be running.

Around them: one alert delivery per finished batch (a team webhook channel, the payload the alerts
app builds), one OpenAI webhook receipt per finished batch, about 40 audit events a day (sign-ins,
cancels, creations), and the sessions and django-axes sign-in logs of a team of 15 signing in every
working day (12-hour sessions). Not a benchmark itself (run_all.py only runs bench_*.py).

Rows go in through executemany (SQLite) or COPY (PostgreSQL) in chunks of one transaction each.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fakedata import CHAT_MODELS, CONNECTIONS, ENDPOINTS, OWNERS, PROJECTS, make_connections

REFRESH = 5  # seconds between refreshes of a watched running batch
TEAM = 15
OUTCOMES = (("completed", 85), ("cancelled", 7), ("failed", 5), ("expired", 3))


@dataclass
class Generated:
    batches: int = 0
    finished: int = 0
    running: int = 0
    snapshots: int = 0
    status_changes: int = 0
    deliveries: int = 0
    receipts: int = 0
    audit_events: int = 0
    sessions: int = 0
    axes_logs: int = 0
    seconds: float = 0.0
    running_pks: list[int] = field(default_factory=list)
    old_pks: list[int] = field(default_factory=list)


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


@dataclass
class _Plan:
    """One batch's life: what the API says of it at the end, and its history."""

    raw: dict[str, Any]
    observed_at: datetime
    changes: list[tuple[str, str, datetime]]
    snapshots: list[tuple[datetime, int, int, int]]
    finished: bool


def _plan(rng: random.Random, number: int, created: datetime, now: datetime) -> _Plan:
    endpoint = _weighted(rng, ENDPOINTS)
    model = rng.choice(("text-embedding-3-small",) if endpoint == "/v1/embeddings" else CHAT_MODELS)
    outcome = _weighted(rng, OUTCOMES)
    total = int(math.exp(rng.uniform(math.log(10), math.log(50_000))))
    rate = math.exp(rng.uniform(math.log(20), math.log(2_000)))  # requests a minute
    minutes = min(max(total / rate, 1.0), 23 * 60.0)
    validated = created + timedelta(seconds=rng.uniform(5, 120))
    stamps: dict[str, datetime | None] = dict.fromkeys(
        (
            "in_progress_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
        ),
        None,
    )
    changes = [("", "validating", created)]
    snapshots: list[tuple[datetime, int, int, int]] = []
    completed = failed = 0
    status = "validating"
    if outcome == "failed":
        if validated <= now:
            status, stamps["failed_at"], total = "failed", validated, 0
            changes.append(("validating", "failed", validated))
    elif validated <= now:
        status, stamps["in_progress_at"] = "in_progress", validated
        changes.append(("validating", "in_progress", validated))
        end = validated + timedelta(minutes=minutes)
        if outcome == "expired":
            end = created + timedelta(hours=24)
        elif outcome == "cancelled":
            end = validated + timedelta(minutes=minutes * rng.uniform(0.1, 0.9))
        stop = min(end, now)
        failure_share = rng.uniform(0, 0.03)
        per_refresh = rate * REFRESH / 60 * (0.5 if outcome == "expired" else 1.0)
        at = validated
        snapshots.append((at, 0, 0, total))
        while True:
            at += timedelta(seconds=REFRESH)
            if at >= stop:
                break
            step = int(rng.gauss(per_refresh, per_refresh * 0.3) + rng.random())
            if step <= 0 or completed + failed + step > total:
                continue  # counts unchanged: the writer stores no snapshot
            failed_now = sum(rng.random() < failure_share for _ in range(min(step, 3)))
            completed += step - failed_now
            failed += failed_now
            snapshots.append((at, completed, failed, total))
        if end <= now:
            if outcome == "completed":
                failed = min(failed, total)
                completed = total - failed
                stamps["finalizing_at"] = end
                stamps["completed_at"] = outcome_at = end + timedelta(seconds=rng.uniform(5, 300))
                if snapshots[-1][1:] != (completed, failed, total):
                    snapshots.append((end, completed, failed, total))
                changes += [
                    ("in_progress", "finalizing", end),
                    ("finalizing", "completed", outcome_at),
                ]
                status = "completed"
            elif outcome == "cancelled":
                stamps["cancelling_at"] = end
                stamps["cancelled_at"] = outcome_at = end + timedelta(seconds=rng.uniform(5, 600))
                changes += [
                    ("in_progress", "cancelling", end),
                    ("cancelling", "cancelled", outcome_at),
                ]
                status = "cancelled"
            else:
                stamps["expired_at"] = end
                changes.append(("in_progress", "expired", end))
                status = "expired"
        # A batch whose last stamp is still ahead of now is running (or finalizing, cancelling).
        if status != "in_progress" and max(s for s in stamps.values() if s) > now:
            status = "in_progress"
            changes = [c for c in changes if c[2] <= now]
            for name in ("finalizing_at", "completed_at", "cancelling_at", "cancelled_at", "expired_at"):
                stamps[name] = None
    done = completed + failed
    usage = None
    if done:
        tokens_in, tokens_out = done * rng.randint(50, 900), done * rng.randint(20, 400)
        usage = {
            "input_tokens": tokens_in,
            "input_tokens_details": {"cached_tokens": tokens_in // 10},
            "output_tokens": tokens_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens_in + tokens_out,
        }
    batch_id = f"batch_{number:08x}{rng.getrandbits(64):016x}"
    raw = {
        "id": batch_id,
        "object": "batch",
        "endpoint": endpoint,
        "model": model,
        "errors": (
            {
                "object": "list",
                "data": [
                    {
                        "code": "invalid_request",
                        "line": 1,
                        "message": "Model not found",
                        "param": "body.model",
                    }
                ],
            }
            if status == "failed"
            else None
        ),
        "input_file_id": f"file-in{rng.getrandbits(48):012x}",
        "completion_window": "24h",
        "status": status,
        "output_file_id": f"file-out{rng.getrandbits(48):012x}"
        if completed and status == "completed"
        else None,
        "error_file_id": f"file-err{rng.getrandbits(48):012x}"
        if failed and status != "in_progress"
        else None,
        "created_at": _unix(created),
        "expires_at": _unix(created + timedelta(hours=24)),
        **{name: _unix(value) for name, value in stamps.items()},
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "usage": usage,
        "metadata": (
            {"project": rng.choice(PROJECTS), "owner": rng.choice(OWNERS), "run": f"run-{number % 997}"}
            if rng.random() < 0.85
            else None
        ),
    }
    last = max([created, *(s for s in stamps.values() if s), *(s[0] for s in snapshots[-1:])])
    observed = min(now, last + timedelta(seconds=rng.uniform(1, REFRESH)))
    return _Plan(raw, observed, changes, snapshots, status in ("completed", "failed", "expired", "cancelled"))


# --- writing ------------------------------------------------------------------------------------------


class _Writer:
    """Rows into tables, fast: executemany on SQLite, COPY on PostgreSQL, values encoded as the sync's
    writer encodes them."""

    def __init__(self) -> None:
        from django.db import connection

        from batches import writer

        self.db = connection
        self.adapt = writer._adapters(connection)

    def encode_time(self, value: datetime | None) -> Any:
        return self.adapt.datetime(value)

    def rows(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        quote = self.db.ops.quote_name
        with self.db.cursor() as cursor:
            if self.db.vendor == "postgresql":
                raw = cursor.cursor
                with raw.copy(f"COPY {quote(table)} ({', '.join(map(quote, columns))}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                sql = "INSERT INTO {} ({}) VALUES ({})".format(
                    quote(table), ", ".join(map(quote, columns)), ", ".join(["%s"] * len(columns))
                )
                cursor.executemany(sql, rows)


def fill_year(
    days: int,
    per_day: int,
    *,
    now: datetime | None = None,
    seed: int = 1,
    first_day: int = 0,
    progress: bool = True,
) -> Generated:
    """`days` days of the team's life ending at `now` (day numbers from `first_day`, so that a later
    call adds more days with batch ids of their own)."""
    from django.db import transaction

    from alerts.models import Channel
    from batches import writer
    from batches.api.objects import ApiBatch
    from batches.models import Batch

    rng = random.Random(seed + first_day)
    now = now or datetime.now(UTC)
    out = Generated()
    started = time.perf_counter()
    connections = make_connections(now)
    weights = [w for _, w in CONNECTIONS]
    channel = Channel.objects.filter(name="team webhook").first() or Channel.objects.create(
        name="team webhook", kind="webhook", url_env="ALERT_BENCH_URL"
    )
    users = _users()
    w = _Writer()
    t = w.encode_time
    json = w.adapt.json
    for day in range(days):
        day_start = now - timedelta(days=days - day)
        plans = []
        for index in range(per_day):
            created = day_start + timedelta(seconds=rng.uniform(0, 86_400))
            number = (first_day + day) * per_day + index
            plans.append((rng.choices(connections, weights=weights)[0], _plan(rng, number, created, now)))
        plans.sort(key=lambda item: item[1].raw["created_at"])
        with transaction.atomic():
            observations = [
                writer.Observation(
                    ApiBatch.from_json(plan.raw), t(plan.observed_at), connection_pk=connection.pk
                )
                for connection, plan in plans
            ]
            with w.db.cursor() as cursor:
                cursor.executemany(writer.NEW_BATCH.sql(w.db), writer.NEW_BATCH.rows(observations, w.adapt))
            pks = dict(
                Batch.objects.filter(batch_id__in=[p.raw["id"] for _, p in plans]).values_list(
                    "batch_id", "pk"
                )
            )
            snapshots, changes, deliveries, receipts = [], [], [], []
            for connection, plan in plans:
                pk = pks[plan.raw["id"]]
                snapshots += [(pk, t(at), c, f, total) for at, c, f, total in plan.snapshots]
                changes += [(pk, old, new, t(at), t(at)) for old, new, at in plan.changes]
                out.batches += 1
                if plan.finished:
                    out.finished += 1
                    finished_at = plan.changes[-1][2]
                    event = plan.raw["status"]
                    payload = {
                        "type": f"batch.{event}",
                        "batch": {
                            "id": plan.raw["id"],
                            "status": event,
                            "connection": connection.name,
                            "request_counts": plan.raw["request_counts"],
                            "url": f"https://batches.example.com/batches/{pk}/",
                        },
                    }
                    deliveries.append(
                        (
                            channel.pk,
                            pk,
                            event,
                            json(payload),
                            "sent",
                            1,
                            t(finished_at),
                            t(finished_at),
                            "",
                            t(finished_at),
                            t(finished_at + timedelta(seconds=2)),
                        )
                    )
                    receipts.append(
                        (
                            f"msg_{plan.raw['id']}",
                            f"batch.{event}",
                            connection.pk,
                            plan.raw["id"],
                            t(finished_at + timedelta(seconds=1)),
                        )
                    )
                    if len(out.old_pks) < 50 and day < days // 2:
                        out.old_pks.append(pk)
                else:
                    out.running += 1
                    if plan.raw["status"] == "in_progress" and len(plan.snapshots) > 20:
                        out.running_pks.append(pk)
            w.rows(
                "batches_progresssnapshot",
                ("batch_id", "taken_at", "completed", "failed", "total"),
                snapshots,
            )
            w.rows(
                "batches_batchstatuschange",
                ("batch_id", "old_status", "new_status", "observed_at", "api_timestamp"),
                changes,
            )
            w.rows(
                "alerts_delivery",
                (
                    "channel_id",
                    "batch_id",
                    "event",
                    "payload",
                    "state",
                    "attempts",
                    "next_attempt_at",
                    "claimed_at",
                    "last_error",
                    "created_at",
                    "sent_at",
                ),
                deliveries,
            )
            w.rows(
                "alerts_webhookreceipt",
                ("webhook_id", "event_type", "connection_id", "batch_id", "received_at"),
                receipts,
            )
            _team_day(w, rng, users, day_start, now, out)
        out.snapshots += len(snapshots)
        out.status_changes += len(changes)
        out.deliveries += len(deliveries)
        out.receipts += len(receipts)
        if progress and ((day + 1) % 30 == 0 or day + 1 == days):
            print(
                f"  day {day + 1}/{days}: {out.batches:,} batches, {out.snapshots:,} snapshots "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    out.seconds = time.perf_counter() - started
    return out


def _users() -> list[Any]:
    from django.contrib.auth import get_user_model

    model = get_user_model()
    users = []
    for name in OWNERS[:TEAM] + tuple(f"member{i}" for i in range(max(0, TEAM - len(OWNERS)))):
        user, _ = model.objects.get_or_create(username=name)
        users.append(user)
    return users


def _team_day(
    w: _Writer, rng: random.Random, users: list[Any], day_start: datetime, now: datetime, out: Generated
) -> None:
    """A working day of the team: sign-ins (a session each, 12 hours, and axes' log), cancels and new
    batches in the audit log."""
    t = w.encode_time
    if day_start.weekday() >= 5:
        return
    sessions, logs, events = [], [], []
    for user in users:
        at = day_start + timedelta(hours=rng.uniform(7, 11))
        key = f"{rng.getrandbits(128):032x}"
        sessions.append((key, "e30:" + "x" * 200, t(at + timedelta(hours=12))))
        logs.append(
            (
                "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
                "10.0.0.7",
                user.username,
                "*/*",
                "/login/",
                t(at),
                None,
                f"{rng.getrandbits(256):064x}",
            )
        )
        events.append((t(at), user.pk, user.username, "sign_in", "", True, "", "10.0.0.7"))
        for _ in range(rng.choice((0, 1, 1, 2))):
            action = rng.choice(("cancel", "create_batch"))
            events.append(
                (
                    t(at + timedelta(hours=rng.uniform(0, 8))),
                    user.pk,
                    user.username,
                    action,
                    f"batch_{rng.getrandbits(64):016x}",
                    True,
                    "",
                    "10.0.0.7",
                )
            )
    w.rows("django_session", ("session_key", "session_data", "expire_date"), sessions)
    w.rows(
        "axes_accesslog",
        (
            "user_agent",
            "ip_address",
            "username",
            "http_accept",
            "path_info",
            "attempt_time",
            "logout_time",
            "session_hash",
        ),
        logs,
    )
    w.rows(
        "accounts_auditevent",
        ("at", "actor_id", "actor_name", "action", "target", "succeeded", "detail", "ip_address"),
        events,
    )
    out.sessions += len(sessions)
    out.axes_logs += len(logs)
    out.audit_events += len(events)
