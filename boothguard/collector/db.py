"""Engines and transactions: one code path for SQLite (WAL, synchronous=FULL, one writer) and PostgreSQL
(psycopg 3)."""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

_WRITE = "boothguard_write"
BUSY_SECONDS = 30
POOL_RECYCLE_SECONDS = 1800
SYNCHRONOUS = "FULL"
# One writer at a time per SQLite engine, queued in-process: threads left to SQLite's busy handler poll
# with sleeps of up to 100 ms, so under a burst of ingests the write lock sat idle while they slept.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


def normalize_url(url: str) -> str:
    """`postgresql://…` means psycopg 3; SQLAlchemy's default would be psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create(url: str, *, pool_size: int = 8) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_setup(engine)
        _SQLITE_WRITERS[engine] = threading.RLock()
        return engine
    # No pool_pre_ping: it was a round trip on every checkout (several per request). A connection that died
    # (PostgreSQL restarted) fails its statement instead: SQLAlchemy sees the disconnect and drops every
    # pooled connection made before it, the request is answered 503 with Retry-After and the agent resends.
    # pool_recycle replaces connections before server or middlebox idle timeouts close them.
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=POOL_RECYCLE_SECONDS
    )


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit BEGIN is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
        _use_wal(cur)
        # FULL: every commit syncs the WAL before it returns, so a batch answered 2xx (and purged by the
        # agent) survives a power cut; NORMAL could roll it back, and the missing seqs would then read
        # as a chain break (tampering). One fsync per transaction; ingest commits once per batch.
        cur.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the write lock up front: no deadlock upgrading a read lock under contention.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def _use_wal(cur: sqlite3.Cursor) -> None:
    # Switching a new file to WAL needs a lock SQLite's busy handler does not wait for: several
    # collectors starting at once on a fresh file would fail with "database is locked".
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A read-write transaction; on SQLite it holds the database's write lock from the start."""
    queue = _SQLITE_WRITERS.get(engine)
    with queue if queue is not None else nullcontext(), engine.connect() as plain:
        conn = plain.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn
