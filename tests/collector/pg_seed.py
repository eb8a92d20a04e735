"""Seeding a real PostgreSQL with booths and events by generate_series (the EXPLAIN tests and the bench).

Shapes follow a real fleet: every booth has events spread over the whole span, a few dozen event types of
very different frequency (heartbeats most), a few hundred users; 1 booth in 50 is silent, 1 in 20 away,
1 in 97 has a chain problem.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from boothguard.collector import partitions
from boothguard.collector.schema import events

BASE = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
# Weighted by repetition: heartbeats dominate, usb.blocked is rare.
TYPES = ["agent.heartbeat"] * 12 + [
    "session.started", "session.ended", "screen.locked", "screen.unlocked", "away.started", "away.ended",
    "clipboard.copy", "clipboard.copy", "file.created", "file.created", "process.started", "usb.attached",
    "usb.blocked", "print.job", "screen.capture", "agent.started",
]  # fmt: skip
USERS = 500


def host_id(i: int) -> str:
    return f"booth-{i:05d}"


_HOST_COLUMNS = [
    ("id", "'booth-' || lpad(i::text, 5, '0')"),
    ("name", "'Floor ' || (i % 7) || ' booth ' || i"),
    ("token_hash", "md5(i::text) || md5('t' || i)"),
    ("enrolled_at", ":now - 86400 * 30"),
    ("last_seen", "CASE WHEN i % 50 = 0 THEN :now - 3600 ELSE :now - (i % 50) END"),
    ("last_type", "'agent.heartbeat'"),
    ("heartbeat_seconds", "60"),
    ("state", "CASE WHEN i % 50 = 0 THEN 'silent' ELSE 'online' END"),
    ("chain_seq", "100"),
    ("chain_hash", "repeat('0', 64)"),
    ("max_seq", "100"),
    ("chain_status", "CASE WHEN i % 97 = 0 THEN 'gap' ELSE 'ok' END"),
    ("chain_detail", "CASE WHEN i % 97 = 0 THEN 'seq 5-9' END"),
    ("away", "i % 20 = 0"),
    ("locked", "i % 20 = 0"),
    ("spool_backlog", "i % 13"),
    ("labels", "'[\"floor\"]'"),
]
_V6_HOST_COLUMNS = [
    ("last_time", "'2026-01-01T00:00:00.000Z'"),
    ("usb_mode", "'enforce'"),
    ("watcher_state", "CASE WHEN i % 31 = 0 THEN 'missing' ELSE 'ok' END"),
    ("watcher_since", "'2026-01-01T00:00:00.000Z'"),
]


def seed_hosts(conn: Connection, n: int, now: float, *, v4: bool = False) -> None:
    """`v4`: a database not yet migrated to v6 (no watcher/USB mode columns on the row)."""
    cols = _HOST_COLUMNS + ([] if v4 else _V6_HOST_COLUMNS)
    names = ", ".join(c for c, _ in cols)
    exprs = ", ".join(e for _, e in cols)
    sql = f"INSERT INTO hosts ({names}) SELECT {exprs} FROM generate_series(1, :n) AS i"
    conn.execute(sa.text(sql), {"n": n, "now": now})


def months_for(n_events: int, step: float) -> list[partitions.Month]:
    return partitions.months(BASE, BASE + n_events * step + 1)


def seed_events(conn: Connection, n_hosts: int, n_events: int, *, step: float = 0.05, start: int = 1) -> None:
    """Events `start`..`n_events`, one every `step` seconds from BASE, round-robin over the booths; the
    partitions they fall in must exist (see months_for)."""
    types = "ARRAY[" + ", ".join(f"'{t}'" for t in TYPES) + "]"
    conn.execute(
        sa.text(
            'INSERT INTO events (host_id, seq, id, time, type, severity, "user", prev_hash, hash, data,'
            " raw, received)"
            " SELECT h, seq, id, tm, ty, sev, u, md5((i - 1)::text) || md5((i - 1)::text),"
            "  md5(i::text) || md5(i::text), '{\"n\": 1}',"
            "  json_build_object('seq', seq, 'id', id, 'time', tm, 'type', ty, 'severity', sev, 'user', u,"
            "   'host', json_build_object('id', h, 'name', 'Booth ' || h),"
            "   'data', json_build_object('pid', 4242, 'path', '/home/agent/file-' || i || '.txt'))::text,"
            "  :base + i * :step + 0.5"
            " FROM (SELECT i, 'booth-' || lpad((i % :h + 1)::text, 5, '0') AS h, i / :h + 1 AS seq,"
            "  md5(i::text)::uuid::text AS id,"
            "  to_char(to_timestamp(:base + i * :step) AT TIME ZONE 'UTC',"
            '   \'YYYY-MM-DD"T"HH24\\:MI\\:SS.MS"Z"\') AS tm,'
            f"  ({types})[i % {len(TYPES)} + 1] AS ty,"
            "  CASE WHEN i % 1000 = 0 THEN 'high' ELSE 'info' END AS sev,"
            f"  'user' || (i % {USERS}) AS u"
            "  FROM generate_series(:start, :n) AS i) AS s"
        ),
        {"h": n_hosts, "n": n_events, "start": start, "base": BASE, "step": step},
    )


def index_names() -> list[str]:
    return [str(i.name) for i in events.indexes]
