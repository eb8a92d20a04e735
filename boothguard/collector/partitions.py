"""PostgreSQL only: `events` as a natively partitioned table, one partition per month of `received`.

Why `received` (the collector's clock, UNIX seconds) and not `time` (the agent's RFC 3339 string): the
collector creates the months ahead of its own clock, so every row lands in a real partition and the default
partition stays empty in practice; a booth with a dead RTC battery or a forged clock (1970, 2099) cannot
scatter rows into it or decide which month a retention drop removes. Queries by event time still use the
per-partition (host_id/type/user, time) indexes; they just cannot prune months.

PostgreSQL requires a partitioned table's unique constraints to include the partition key, so the primary
key is (pk, received) and (host_id, seq) is a plain index: one event per seq is kept by ingest, which holds
the host row's lock (SELECT … FOR UPDATE) while it checks the stored seqs and inserts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from boothguard import log
from boothguard.collector import db
from boothguard.collector.schema import tables

_log = log.get("collector.partitions")
_LOCK_ID = 0x6267_7032  # "bgp2": partition maintenance, one collector at a time
DEFAULT = "events_default"
MONTHS_AHEAD = 2
MAX_MONTHS = 240  # months the conversion creates at most; anything older goes to the default partition
_OLD = "events_unpartitioned"
# Superseded at v6 by (type, time) and (time, type); not carried over.
_DROPPED = frozenset({"ix_events_type", "ix_events_time"})


@dataclass(frozen=True)
class Month:
    name: str
    start: float
    end: float


def month_of(unix: float) -> Month:
    dt = datetime.fromtimestamp(unix, UTC)
    start = datetime(dt.year, dt.month, 1, tzinfo=UTC)
    end = datetime(dt.year + dt.month // 12, dt.month % 12 + 1, 1, tzinfo=UTC)
    return Month(f"events_y{dt.year:04d}m{dt.month:02d}", start.timestamp(), end.timestamp())


def months(lo: float, hi: float) -> list[Month]:
    """The months from the one holding `lo` to the one holding `hi`, inclusive."""
    out = [month_of(lo)]
    while out[-1].end <= hi:
        out.append(month_of(out[-1].end))
    return out


def is_partitioned(conn: Connection) -> bool:
    q = "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass('events')"
    return conn.execute(sa.text(q)).scalar() == "p"


def existing(conn: Connection) -> dict[str, str]:
    """Partition name → its bound, as PostgreSQL prints it."""
    q = sa.text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('events') ORDER BY 1"
    )
    return {str(name): str(bound) for name, bound in conn.execute(q)}


def ensure(engine: Engine, now: float, ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create this month's partition and the next `ahead` ones; returns the names created."""
    if engine.dialect.name != "postgresql":
        return []
    with db.write(engine) as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        if not is_partitioned(conn):
            return []
        have = existing(conn)
        wanted = months(now, now)
        for _ in range(ahead):
            wanted.append(month_of(wanted[-1].end))
        created = []
        for month in wanted:
            if month.name not in have:
                create(conn, month)
                created.append(month.name)
    if created:
        _log.info("partitions_created", partitions=created)
    return created


def create(conn: Connection, month: Month) -> None:
    """Attach a month's partition, first moving into it any rows the default partition holds for it
    (PostgreSQL refuses to attach a range the default partition has rows for)."""
    name = _ident(month.name)
    conn.execute(sa.text(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    # names are checked identifiers
    delete = f"DELETE FROM {DEFAULT} WHERE received >= :lo AND received < :hi RETURNING *"  # noqa: S608
    move = f"WITH moved AS ({delete}) INSERT INTO {name} SELECT * FROM moved"  # noqa: S608
    moved = conn.execute(
        sa.text(move),
        {"lo": month.start, "hi": month.end},
    ).rowcount
    conn.execute(
        sa.text(
            f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({month.start!r}) TO ({month.end!r})"
        )
    )
    if moved:
        _log.warning("partition_rows_moved_from_default", partition=month.name, rows=moved)


def convert(conn: Connection) -> None:
    """v6 on PostgreSQL: the plain `events` table becomes a partitioned one, every row and every column
    (including any an earlier step added) kept, the pk sequence continuing where it was."""
    conn.execute(sa.text(f"ALTER TABLE events RENAME TO {_OLD}"))
    carried = _drop_indexes(conn)
    seq = conn.execute(sa.text(f"SELECT pg_get_serial_sequence('{_OLD}', 'pk')")).scalar()
    if seq is not None:
        conn.execute(sa.text(f"ALTER SEQUENCE {seq} OWNED BY NONE"))
    conn.execute(
        sa.text(
            f"CREATE TABLE events (LIKE {_OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            " PARTITION BY RANGE (received)"
        )
    )
    conn.execute(sa.text("ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (pk, received)"))
    conn.execute(sa.text(f"CREATE TABLE {DEFAULT} PARTITION OF events DEFAULT"))
    lo, hi, rows = conn.execute(sa.text(f"SELECT min(received), max(received), count(*) FROM {_OLD}")).one()  # noqa: S608
    if rows:
        span = months(float(lo), float(hi))[-MAX_MONTHS:]
        for month in span:
            conn.execute(
                sa.text(
                    f"CREATE TABLE {_ident(month.name)} PARTITION OF events"
                    f" FOR VALUES FROM ({month.start!r}) TO ({month.end!r})"
                )
            )
    # Rows first, indexes after: one sorted build per index instead of row-by-row maintenance.
    conn.execute(sa.text("SET LOCAL maintenance_work_mem = '256MB'"))
    conn.execute(sa.text(f"INSERT INTO events SELECT * FROM {_OLD}"))  # noqa: S608 - a constant
    conn.execute(sa.text(f"DROP TABLE {_OLD}"))
    if seq is not None:
        conn.execute(sa.text(f"ALTER SEQUENCE {seq} OWNED BY events.pk"))
    conn.execute(sa.text("CREATE INDEX ix_events_host_seq ON events (host_id, seq)"))
    for index in tables(6).tables["events"].indexes:
        index.create(conn)
    known = {i.name for i in tables(6).tables["events"].indexes}
    for name, definition in carried:
        if name not in known:
            conn.execute(sa.text(definition))
    conn.execute(sa.text("ANALYZE events"))
    _log.info("events_partitioned", rows=int(rows), partitions=len(existing(conn)))


def _drop_indexes(conn: Connection) -> list[tuple[str, str]]:
    """Drop the old table's indexes (their names are needed by the new table); return the non-unique ones
    to rebuild on it. A unique index without `received` cannot exist on a partitioned table: it is logged."""
    q = sa.text(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisunique, con.conname"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid"
        " WHERE i.indrelid = to_regclass(:old)"
    )
    carried = []
    for name, definition, unique, constraint in conn.execute(q, {"old": _OLD}).all():
        if constraint is not None:
            conn.execute(sa.text(f"ALTER TABLE {_OLD} DROP CONSTRAINT {_ident(str(constraint))}"))
        else:
            conn.execute(sa.text(f"DROP INDEX {_ident(str(name))}"))
        if unique:
            if constraint not in ("events_pkey", "uq_events_host_seq"):
                _log.warning("events_unique_index_not_carried", index=str(name))
            continue
        if name in _DROPPED:
            continue
        carried.append((str(name), re.sub(rf" ON (\S+\.)?{_OLD} ", " ON events ", str(definition))))
    return carried


def _ident(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name
