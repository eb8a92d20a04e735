"""The dashboard's own reads and writes against the collector's tables (what the API queries lack)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from boothguard.collector import db
from boothguard.collector import queries as api_queries
from boothguard.collector.retention_skeleton import is_whole
from boothguard.collector.schema import alerts, api_sessions, events, hosts
from boothguard.collector.store import audit, token_hash
from boothguard.events import SEVERITIES, SEVERITY_RANK

ALERT_STATES = ("open", "acked", "resolved")
PAGE = 100
EXPORT_LIMIT = 50_000  # events in one incident export; beyond it the export says it is truncated
SEARCH_TIMEOUT_MS = 5000  # a search the indexes cannot serve (a rare word in the raw text) gives up here
_CURSOR = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)_(\d{1,18})")


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


def host_names(engine: Engine) -> list[tuple[str, str]]:
    with db.read(engine) as conn:
        return [
            (str(r.id), str(r.name))
            for r in conn.execute(sa.select(hosts.c.id, hosts.c.name).order_by(hosts.c.name))
        ]


def last_commands(engine: Engine, host_ids: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per host (of `host_ids`, or all), the newest remote command and how far it got (pending, done,
    failed, expired)."""
    from boothguard.collector.schema import commands

    per_host = sa.select(commands.c.host_id, sa.func.max(commands.c.created_at).label("at"))
    if host_ids is not None:
        per_host = per_host.where(commands.c.host_id.in_(host_ids))
    newest = per_host.group_by(commands.c.host_id).subquery()
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


def search_query(f: EventFilter, *, limit: int = PAGE, before: str | None = None) -> sa.Select[Any]:
    """Newest first by event time (pk breaks ties), so the (host/type/user, time) indexes give the order
    and the scan stops after one page; the cursor is the last row's (time, pk)."""
    q = _event_where(sa.select(events.c.pk, events.c.time, events.c.raw), f)
    q = q.order_by(events.c.time.desc(), events.c.pk.desc()).limit(limit + 1)
    if before:
        time, pk = parse_cursor(before)
        q = q.where(
            sa.or_(events.c.time < time, sa.and_(events.c.time == time, events.c.pk < pk)),
        )
    return q


def parse_cursor(text: str) -> tuple[str, int]:
    m = _CURSOR.fullmatch(text)
    if m is None:
        raise api_queries.BadQuery("bad cursor")
    return m[1], int(m[2])


def search_events(
    engine: Engine, f: EventFilter, *, limit: int = PAGE, before: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page, newest first, and the cursor for the next older page."""
    q = search_query(f, limit=limit, before=before)
    try:
        with db.read(engine) as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text(f"SET LOCAL statement_timeout = {SEARCH_TIMEOUT_MS}"))
            rows = conn.execute(q).all()
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "57014":  # query_canceled: our timeout
            raise
        raise api_queries.BadQuery(
            "this search is too broad for the text filter; narrow it by booth, user, type or time"
        ) from None
    page = rows[:limit]
    cursor = f"{page[-1][1]}_{page[-1][0]}" if len(rows) > limit else None
    return [_event_row(raw) for _pk, _time, raw in page], cursor


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
