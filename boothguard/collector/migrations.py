"""Versioned schema migrations: `schema_version` holds the last step applied; steps run in order, once.

Several collector processes may start at once: on PostgreSQL an advisory lock serializes them, on SQLite
the write transaction does.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from boothguard import log
from boothguard.collector import db, host_backfill, partitions
from boothguard.collector.schema import LATEST, tables

_log = log.get("collector.migrations")
_LOCK_ID = 0x6267_6331  # "bgc1"


def _v1(conn: Connection) -> None:
    md = tables(1)
    for name in ("hosts", "events", "alerts", "commands", "users", "audit_log"):
        md.tables[name].create(conn)


def _v2(conn: Connection) -> None:
    md = tables(2)
    conn.execute(sa.text("ALTER TABLE hosts ADD COLUMN spool_backlog BIGINT"))
    md.tables["api_sessions"].create(conn)
    for index in md.tables["events"].indexes:
        if index.name == "ix_events_type":
            index.create(conn)


def _v3(conn: Connection) -> None:
    md = tables(3)
    for name in ("host_groups", "policies", "group_members", "host_policy"):
        md.tables[name].create(conn)


def _v4(conn: Connection) -> None:
    user = conn.dialect.identifier_preparer.quote("user")  # a reserved word on PostgreSQL
    conn.execute(sa.text(f"ALTER TABLE alerts ADD COLUMN {user} VARCHAR(256)"))
    conn.execute(sa.text(f"ALTER TABLE hosts ADD COLUMN labels {sa.JSON().compile(dialect=conn.dialect)}"))


def _v5(conn: Connection) -> None:
    """Store once and retention: `data` and `raw` may be NULL (derived / compacted), `compacted` marks a
    skeleton; existing rows keep what they hold."""
    md = tables(5)
    if conn.dialect.name == "sqlite":
        _rebuild_sqlite_events(conn, md.tables["events"])
    else:
        conn.execute(
            sa.text(
                "ALTER TABLE events ALTER COLUMN data DROP NOT NULL, ALTER COLUMN raw DROP NOT NULL,"
                " ADD COLUMN compacted DOUBLE PRECISION"
            )
        )
    md.tables["retention_cursors"].create(conn)


def _rebuild_sqlite_events(conn: Connection, target: sa.Table) -> None:
    # SQLite cannot drop a NOT NULL: copy into a table of the new shape (same pks), then swap names.
    columns = [
        sa.Column(
            c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, autoincrement=c.autoincrement
        )
        for c in target.columns
    ]
    fresh = sa.Table(
        "events_v5", sa.MetaData(), *columns, sa.UniqueConstraint("host_id", "seq", name="uq_events_host_seq")
    )
    fresh.create(conn)
    kept = ", ".join(
        conn.dialect.identifier_preparer.quote(c.name) for c in target.columns if c.name != "compacted"
    )
    # Column names from our own schema, not input.
    conn.execute(sa.text(f"INSERT INTO events_v5 ({kept}) SELECT {kept} FROM events"))  # noqa: S608
    conn.execute(sa.text("DROP TABLE events"))
    conn.execute(sa.text("ALTER TABLE events_v5 RENAME TO events"))
    for index in target.indexes:
        index.create(conn)


def _v6(conn: Connection) -> None:
    """Scale: host row columns for the booths page, the query indexes, and on PostgreSQL `events` made a
    monthly partitioned table in place (see partitions.py)."""
    md = tables(6)
    for name in ("last_time", "usb_mode", "watcher_state", "watcher_since", "watcher_reason"):
        column = md.tables["hosts"].c[name]
        conn.execute(
            sa.text(f"ALTER TABLE hosts ADD COLUMN {name} {column.type.compile(dialect=conn.dialect)}")
        )
    for index in md.tables["hosts"].indexes:
        index.create(conn)
    if conn.dialect.name == "postgresql":
        partitions.convert(conn)
    else:
        for old in ("ix_events_type", "ix_events_time"):  # superseded by (type, time), (time, type)
            conn.execute(sa.text(f"DROP INDEX IF EXISTS {old}"))
        for index in md.tables["events"].indexes:
            index.create(conn)
    _log.info("hosts_backfilled", hosts=host_backfill.backfill(conn))


STEPS: dict[int, Callable[[Connection], None]] = {1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5, 6: _v6}
assert sorted(STEPS) == list(range(1, LATEST + 1))


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    value = conn.execute(sa.text("SELECT max(version) FROM schema_version")).scalar()
    return int(value or 0)


def migrate(engine: Engine, target: int = LATEST) -> int:
    """Bring the database to `target`; returns the version found before."""
    with db.write(engine) as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        found = current_version(conn)
        if found == 0:
            tables(0).tables["schema_version"].create(conn, checkfirst=True)
            conn.execute(sa.text("INSERT INTO schema_version (version) VALUES (0)"))
        if found > LATEST:
            raise RuntimeError(f"database schema v{found} is newer than this collector (v{LATEST})")
        for step in range(found + 1, target + 1):
            _log.info("schema_migrate", step=step)
            STEPS[step](conn)
            conn.execute(sa.text("UPDATE schema_version SET version = :v"), {"v": step})
        return found
