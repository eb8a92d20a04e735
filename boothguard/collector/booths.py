"""The booths page's reads: one page of host rows, searched by name or id, filtered by state, in name
order by keyset; everything shown comes from the host row (ingest keeps it current), none from events."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from boothguard.collector import db
from boothguard.collector.queries import BadQuery, host_json
from boothguard.collector.schema import hosts

STATES = ("silent", "away", "chain")
PAGE = 50
MAX_PAGE = 200
MAX_CURSOR = 1024


@dataclass(frozen=True)
class Silence:
    """The silence rule in SQL terms: silent after `heartbeats` x the reported interval, else `default`."""

    heartbeats: float
    default_seconds: float

    def threshold(self) -> sa.ColumnElement[float]:
        beat = hosts.c.heartbeat_seconds
        return sa.case((beat > 0, beat * self.heartbeats), else_=self.default_seconds)

    def is_silent(self, now: float) -> sa.ColumnElement[bool]:
        overdue = sa.and_(
            hosts.c.state == "online",
            hosts.c.last_seen.is_not(None),
            hosts.c.last_seen < sa.literal(now) - self.threshold(),
        )
        return sa.or_(hosts.c.state == "silent", overdue)


@dataclass(frozen=True)
class BoothFilter:
    q: str | None = None  # part of a booth's name or id
    state: str | None = None  # one of STATES

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}


def _where(f: BoothFilter, now: float, silence: Silence) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = []
    if f.q:
        needle = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        out.append(
            sa.or_(
                hosts.c.id == f.q,
                hosts.c.name.ilike(needle, escape="\\"),
                hosts.c.id.ilike(needle, escape="\\"),
            )
        )
    if f.state == "silent":
        out.append(silence.is_silent(now))
    elif f.state == "away":
        out.append(hosts.c.away.is_(True))
    elif f.state == "chain":
        out.append(hosts.c.chain_status != "ok")
    elif f.state:
        raise BadQuery(f"state must be one of {', '.join(STATES)}")
    return out


def page_query(
    f: BoothFilter, now: float, silence: Silence, *, after: str | None = None, limit: int = PAGE
) -> sa.Select[Any]:
    if not 0 < limit <= MAX_PAGE:
        raise BadQuery(f"limit must be 1..{MAX_PAGE}")
    q = sa.select(hosts).where(*_where(f, now, silence)).order_by(hosts.c.name, hosts.c.id).limit(limit + 1)
    if after:
        name, host_id = decode_cursor(after)
        q = q.where(sa.tuple_(hosts.c.name, hosts.c.id) > sa.tuple_(sa.literal(name), sa.literal(host_id)))
    return q


def page(
    engine: Engine,
    f: BoothFilter,
    now: float,
    silence: Silence,
    threshold: Callable[[RowMapping], float],
    *,
    after: str | None = None,
    limit: int = PAGE,
) -> dict[str, Any]:
    """A page of booths, the cursor of the next one, how many match and how many are in each state."""
    q = page_query(f, now, silence, after=after, limit=limit)
    counts = sa.select(
        sa.func.count(),
        sa.func.count().filter(silence.is_silent(now)),
        sa.func.count().filter(hosts.c.away.is_(True)),
        sa.func.count().filter(hosts.c.chain_status != "ok"),
    )
    matching = sa.select(sa.func.count()).select_from(hosts).where(*_where(f, now, silence))
    with db.read(engine) as conn:
        rows = conn.execute(q).mappings().all()
        total, silent, away, chain = conn.execute(counts.select_from(hosts)).one()
        matched = int(conn.execute(matching).scalar() or 0)
    shown = rows[:limit]
    nxt = encode_cursor(shown[-1]["name"], shown[-1]["id"]) if len(rows) > limit else None
    return {
        "hosts": [booth_json(r, now, threshold(r)) for r in shown],
        "next_cursor": nxt,
        "matched": matched,
        "counts": {"all": int(total), "silent": int(silent), "away": int(away), "chain": int(chain)},
    }


def one(
    engine: Engine, host_id: str, now: float, threshold: Callable[[RowMapping], float]
) -> dict[str, Any] | None:
    with db.read(engine) as conn:
        row = conn.execute(sa.select(hosts).where(hosts.c.id == host_id)).mappings().first()
    return None if row is None else booth_json(row, now, threshold(row))


def booth_json(r: RowMapping, now: float, limit: float) -> dict[str, Any]:
    """The API's host view plus what the board shows besides: USB mode, watcher health, last event."""
    out = host_json(r, now, limit)
    out["usb_mode"] = r["usb_mode"]
    out["watcher"] = {
        "state": r["watcher_state"] or "unknown",
        "since": r["watcher_since"],
        "reason": r["watcher_reason"],
    }
    out["last_event"] = {"type": r["last_type"], "time": r["last_time"]} if r["last_type"] else None
    return out


def encode_cursor(name: str, host_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([name, host_id]).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[str, str]:
    try:
        if len(text) > MAX_CURSOR:
            raise ValueError
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadQuery("bad cursor") from None
    return value[0], value[1]


def resolve_host(engine: Engine, text: str) -> str:
    """A booth typed into a search box, by id or by name (case-insensitive, whole or a unique part) → its
    id; text naming no single booth is kept as is (and matches nothing)."""
    needle = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with db.read(engine) as conn:
        if conn.execute(sa.select(hosts.c.id).where(hosts.c.id == text)).first() is not None:
            return text
        for cond in (sa.func.lower(hosts.c.name) == text.lower(), hosts.c.name.ilike(needle, escape="\\")):
            found = conn.execute(sa.select(hosts.c.id).where(cond).limit(2)).scalars().all()
            if len(found) == 1:
                return str(found[0])
    return text
