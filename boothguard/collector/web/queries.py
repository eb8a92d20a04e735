"""The dashboard's own reads and writes against the collector's tables (what the API queries lack)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from boothguard.collector import db
from boothguard.collector import queries as api_queries
from boothguard.collector.retention_skeleton import is_whole, stored_data
from boothguard.collector.schema import alerts, api_sessions, events, hosts
from boothguard.collector.store import audit, token_hash
from boothguard.events import SEVERITIES, SEVERITY_RANK

ALERT_STATES = ("open", "acked", "resolved")
PAGE = 100
EXPORT_LIMIT = 50_000  # events in one incident export; beyond it the export says it is truncated
# Event types whose latest occurrence describes a host's current state.
USB_MODE_TYPES = ("agent.started",)
WATCHER_TYPES = ("session.watcher_missing", "session.started", "session.ended")


def severities_from(minimum: str | None) -> Sequence[str] | None:
    if not minimum:
        return None
    if minimum not in SEVERITY_RANK:
        raise api_queries.BadQuery(f"severity must be one of {', '.join(SEVERITIES)}")
    return SEVERITIES[SEVERITY_RANK[minimum] :]


# --- sessions and audit ---------------------------------------------------------------------------


def end_session(engine: Engine, token: str, actor: str, now: float) -> None:
    with db.write(engine) as conn:
        conn.execute(sa.delete(api_sessions).where(api_sessions.c.token_hash == token_hash(token)))
        audit(conn, actor, "session.logout", actor, {}, now=now)


def record(
    engine: Engine, actor: str, action: str, target: str | None, detail: dict[str, Any], *, now: float
) -> None:
    with db.write(engine) as conn:
        audit(conn, actor, action, target, detail, now=now)


# --- alerts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertFilter:
    severity: str | None = None  # minimum
    type: str | None = None  # event type, `prefix.*` allowed
    host: str | None = None
    state: str | None = None

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}


def _like_prefix(column: sa.ColumnElement[Any], pattern: str) -> sa.ColumnElement[bool]:
    if pattern.endswith(".*") or pattern.endswith("*"):
        prefix = pattern.rstrip("*").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(prefix + "%", escape="\\")
    return column == pattern


def list_alerts(engine: Engine, f: AlertFilter, limit: int = PAGE) -> list[dict[str, Any]]:
    """Newest first (by last occurrence, then id): a repeat of an old alert comes back to the top."""
    q = sa.select(alerts).order_by(alerts.c.last_seen.desc(), alerts.c.id.desc()).limit(limit)
    if (sev := severities_from(f.severity)) is not None:
        q = q.where(alerts.c.severity.in_(sev))
    if f.type:
        q = q.where(_like_prefix(alerts.c.event_type, f.type))
    if f.host:
        q = q.where(sa.or_(alerts.c.host_id == f.host, alerts.c.host_name == f.host))
    if f.state:
        if f.state not in ALERT_STATES:
            raise api_queries.BadQuery("state must be open, acked or resolved")
        q = q.where(alerts.c.state == f.state)
    with db.read(engine) as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def alert_counts(engine: Engine) -> dict[str, int]:
    with db.read(engine) as conn:
        rows = conn.execute(sa.select(alerts.c.state, sa.func.count()).group_by(alerts.c.state)).all()
    return {str(state): int(n) for state, n in rows}


def alert_types(engine: Engine) -> list[str]:
    with db.read(engine) as conn:
        q = sa.select(alerts.c.event_type).distinct().order_by(alerts.c.event_type).limit(200)
        return [str(r[0]) for r in conn.execute(q)]


# --- hosts ----------------------------------------------------------------------------------------


def _latest_of(engine: Engine, types: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per host, the newest stored event among `types` (type, time, data)."""
    newest = (
        sa.select(events.c.host_id, sa.func.max(events.c.seq).label("seq"))
        .where(events.c.type.in_(types))
        .group_by(events.c.host_id)
        .subquery()
    )
    q = sa.select(events.c.host_id, events.c.type, events.c.time, events.c.raw).join(
        newest, sa.and_(events.c.host_id == newest.c.host_id, events.c.seq == newest.c.seq)
    )
    with db.read(engine) as conn:
        return {str(r["host_id"]): {**r, "data": stored_data(r["raw"])} for r in conn.execute(q).mappings()}


def hosts_board(engine: Engine, now: float, threshold: Callable[[RowMapping], float]) -> list[dict[str, Any]]:
    """The API's host view plus what the board shows besides: USB mode, watcher health, last event."""
    board: list[dict[str, Any]] = api_queries.list_hosts(engine, now, threshold)["hosts"]
    started = _latest_of(engine, USB_MODE_TYPES)
    watchers = _latest_of(engine, WATCHER_TYPES)
    last = _latest_of_any(engine)
    for h in board:
        mode = started.get(h["id"])
        h["usb_mode"] = (mode["data"] or {}).get("usb_mode") if mode else None
        w = watchers.get(h["id"])
        if w is None:
            h["watcher"] = {"state": "unknown", "since": None, "reason": None}
        elif w["type"] == "session.watcher_missing":
            reason = (w["data"] or {}).get("reason")
            h["watcher"] = {"state": "missing", "since": w["time"], "reason": reason}
        elif w["type"] == "session.started":
            h["watcher"] = {"state": "ok", "since": w["time"], "reason": None}
        else:
            h["watcher"] = {"state": "no_session", "since": w["time"], "reason": None}
        ev = last.get(h["id"])
        h["last_event"] = {"type": ev["type"], "time": ev["time"]} if ev else None
    return board


def _latest_of_any(engine: Engine) -> dict[str, RowMapping]:
    q = sa.select(hosts.c.id.label("host_id"), hosts.c.max_seq)
    with db.read(engine) as conn:
        heads = [(str(r.host_id), int(r.max_seq)) for r in conn.execute(q)]
        out: dict[str, RowMapping] = {}
        for host_id, seq in heads:
            if seq <= 0:
                continue
            row = (
                conn.execute(
                    sa.select(events.c.type, events.c.time).where(
                        events.c.host_id == host_id, events.c.seq == seq
                    )
                )
                .mappings()
                .first()
            )
            if row is not None:
                out[host_id] = row
    return out


def host_names(engine: Engine) -> list[tuple[str, str]]:
    with db.read(engine) as conn:
        return [
            (str(r.id), str(r.name))
            for r in conn.execute(sa.select(hosts.c.id, hosts.c.name).order_by(hosts.c.name))
        ]


def last_commands(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per host, the newest remote command and how far it got (pending, done, failed, expired)."""
    from boothguard.collector.schema import commands

    newest = (
        sa.select(commands.c.host_id, sa.func.max(commands.c.created_at).label("at"))
        .group_by(commands.c.host_id)
        .subquery()
    )
    q = sa.select(commands).join(
        newest, sa.and_(commands.c.host_id == newest.c.host_id, commands.c.created_at == newest.c.at)
    )
    with db.read(engine) as conn:
        return {str(r["host_id"]): dict(r) for r in conn.execute(q).mappings()}


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    host: str | None = None
    user: str | None = None
    type: str | None = None
    severity: str | None = None
    since: str | None = None  # RFC 3339 UTC (already normalized)
    until: str | None = None
    text: str | None = None  # substring of type, user or host name

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}


def _event_where(q: sa.Select[Any], f: EventFilter) -> sa.Select[Any]:
    q = q.where(is_whole())  # skeletons (retention) have nothing to show
    if f.host:
        q = q.where(events.c.host_id == f.host)
    if f.user:
        q = q.where(events.c.user == f.user)
    if f.type:
        q = q.where(_like_prefix(events.c.type, f.type))
    if (sev := severities_from(f.severity)) is not None:
        q = q.where(events.c.severity.in_(sev))
    if f.since:
        q = q.where(events.c.time >= api_queries.normalize_time(f.since))
    if f.until:
        q = q.where(events.c.time < api_queries.normalize_time(f.until))
    if f.text:
        needle = "%" + f.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = q.where(
            sa.or_(
                events.c.type.like(needle, escape="\\"),
                events.c.user.like(needle, escape="\\"),
                events.c.raw.like(needle, escape="\\"),
            )
        )
    return q


def _event_row(raw: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(raw)
    return out


def search_events(
    engine: Engine, f: EventFilter, *, limit: int = PAGE, before: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns a page and the cursor (pk) for the next older page."""
    q = _event_where(sa.select(events.c.pk, events.c.raw), f).order_by(events.c.pk.desc()).limit(limit + 1)
    if before is not None:
        q = q.where(events.c.pk < before)
    with db.read(engine) as conn:
        rows = conn.execute(q).all()
    page = rows[:limit]
    cursor = int(page[-1][0]) if len(rows) > limit else None
    return [_event_row(raw) for _pk, raw in page], cursor


def timeline(
    engine: Engine, f: EventFilter, *, limit: int = EXPORT_LIMIT
) -> tuple[list[dict[str, Any]], bool]:
    """Oldest first, by event time; `True` when more than `limit` events matched."""
    q = _event_where(sa.select(events.c.raw), f).order_by(events.c.time, events.c.host_id, events.c.seq)
    with db.read(engine) as conn:
        rows = conn.execute(q.limit(limit + 1)).all()
    return [_event_row(r[0]) for r in rows[:limit]], len(rows) > limit


def alerts_in(engine: Engine, f: EventFilter, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Alerts about the export's host (or the hosts the user's events came from) within its range."""
    q = sa.select(alerts).order_by(alerts.c.first_seen).limit(limit)
    if f.host:
        q = q.where(alerts.c.host_id == f.host)
    elif f.user:
        user_hosts = sa.select(events.c.host_id).where(events.c.user == f.user).distinct()
        q = q.where(alerts.c.host_id.in_(user_hosts))
    if f.since:
        q = q.where(alerts.c.last_seen >= _unix(api_queries.normalize_time(f.since)))
    if f.until:
        q = q.where(alerts.c.first_seen < _unix(api_queries.normalize_time(f.until)))
    with db.read(engine) as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def _unix(rfc3339: str) -> float:
    return datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
