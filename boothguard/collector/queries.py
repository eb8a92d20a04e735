"""The collector's reads for the API: events, alerts and hosts, filtered and paginated by cursor."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from boothguard.collector import db
from boothguard.collector.retention_skeleton import is_whole
from boothguard.collector.schema import alerts, events, hosts
from boothguard.collector.store import silence_reason
from boothguard.events import SEVERITIES, SEVERITY_RANK, format_time

MAX_LIMIT = 1000


class BadQuery(ValueError):
    pass


def normalize_time(text: str) -> str:
    """Any RFC 3339 / ISO 8601 instant → the events' own fixed-width UTC form (for text comparison)."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadQuery(f"not an RFC 3339 time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return format_time(dt.timestamp())
    except (OverflowError, OSError, ValueError):
        raise BadQuery(f"time out of range: {text!r}") from None


def _cursor(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    # isdigit() also takes "¹" and "٣", which int() then refuses or reads as another number
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise BadQuery("bad cursor")
    return int(text)


def list_events(
    engine: Engine,
    *,
    host: str | None = None,
    type_: str | None = None,
    severity: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Newest first. `type` may end in `.*` (a prefix); `severity` is a minimum."""
    q = sa.select(events.c.pk, events.c.raw).where(is_whole()).order_by(events.c.pk.desc()).limit(limit + 1)
    if host:
        q = q.where(events.c.host_id == host)
    if type_:
        if type_.endswith(".*"):
            prefix = type_[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(events.c.type.like(prefix + "%", escape="\\"))
        else:
            q = q.where(events.c.type == type_)
    if severity:
        if severity not in SEVERITY_RANK:
            raise BadQuery(f"severity must be one of {', '.join(SEVERITIES)}")
        q = q.where(events.c.severity.in_(SEVERITIES[SEVERITY_RANK[severity] :]))
    if since:
        q = q.where(events.c.time >= normalize_time(since))
    if until:
        q = q.where(events.c.time < normalize_time(until))
    if (after := _cursor(cursor)) is not None:
        q = q.where(events.c.pk < after)
    with db.read(engine) as conn:
        rows = conn.execute(q).all()
    page = rows[:limit]
    return {
        "events": [json.loads(raw) for _pk, raw in page],
        "next_cursor": str(page[-1][0]) if len(rows) > limit else None,
    }


def alert_json(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("first_seen", "last_seen", "last_notified", "acked_at", "resolved_at"):
        if out.get(key) is not None:
            out[key] = format_time(out[key])
    return out


def list_alerts(
    engine: Engine,
    *,
    state: str | None = None,
    host: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    q = sa.select(alerts).order_by(alerts.c.id.desc()).limit(limit + 1)
    if state:
        if state not in ("open", "acked", "resolved"):
            raise BadQuery("state must be open, acked or resolved")
        q = q.where(alerts.c.state == state)
    if host:
        q = q.where(alerts.c.host_id == host)
    if (after := _cursor(cursor)) is not None:
        q = q.where(alerts.c.id < after)
    with db.read(engine) as conn:
        rows = conn.execute(q).mappings().all()
    page = rows[:limit]
    return {
        "alerts": [alert_json(r) for r in page],
        "next_cursor": str(page[-1]["id"]) if len(rows) > limit else None,
    }


def list_hosts(engine: Engine, now: float, threshold: Callable[[RowMapping], float]) -> dict[str, Any]:
    with db.read(engine) as conn:
        rows = conn.execute(sa.select(hosts).order_by(hosts.c.id)).mappings().all()
    return {"hosts": [host_json(r, now, threshold(r)) for r in rows]}


def host_json(r: RowMapping, now: float, limit: float) -> dict[str, Any]:
    """One host row as the API shows it; `limit` is its silence threshold in seconds."""
    status, why = r["state"], r["silent_reason"]
    if r["last_seen"] is None:
        status = "new"
    elif status == "online" and now - r["last_seen"] > limit:
        status, why = "silent", silence_reason(r["last_type"], r["last_reason"])
    return {
        "id": r["id"],
        "name": r["name"],
        "labels": list(r["labels"] or []),
        "enrolled_at": format_time(r["enrolled_at"]),
        "last_seen": format_time(r["last_seen"]) if r["last_seen"] is not None else None,
        "status": status,
        "silent_reason": why if status == "silent" else None,
        "silence_threshold_seconds": limit,
        "last_event_type": r["last_type"],
        "away": r["away"],
        "locked": r["locked"],
        "spool_backlog": r["spool_backlog"],
        "chain": {
            "status": r["chain_status"],
            "detail": r["chain_detail"],
            "verified_seq": r["chain_seq"],
            "max_seq": r["max_seq"],
        },
    }
