"""Opening the spool database, and recovering it: a file that fails SQLite's quick check is moved aside and
a new one started; a file that is missing or empty while seqs were handed out counts as lost. Either way the
chain restarts above every seq ever reserved (the sidecar), and the loss is declared as a `spool.gap`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boothguard import log
from boothguard.errors import PersistenceError
from boothguard.events import ZERO_HASH, Draft
from boothguard.spool.files import Reservation, SeqSidecar, move_aside

_log = log.get("spool")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, rank INTEGER NOT NULL, body BLOB NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_rank ON events (rank, seq);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY, body BLOB NOT NULL, error TEXT NOT NULL, time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class Opened:
    """An open spool database and the state it holds; the chain's head is also its last commit."""

    db: sqlite3.Connection
    head_seq: int
    head_hash: str
    dropped_full: int
    acked: int
    bytes: int  # bodies on disk, acknowledged-but-not-purged ones included
    largest: int
    reserved: int
    notes: list[Draft] = field(default_factory=list)  # the loss reports to commit first


def open_spool(path: Path, sidecar: SeqSidecar, clock: Callable[[], float]) -> Opened:
    """Open the spool at `path`, recovering from corruption or loss. Raises PersistenceError."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    reservation = sidecar.read()
    existed = path.exists() and path.stat().st_size > 0
    opened, problem = _try_open(path, sidecar) if existed else (None, None)
    if opened is None and problem is not None:
        moved = move_aside(path, time.strftime("%Y%m%dT%H%M%S", time.gmtime(clock())))
        _log.error("spool_corrupt", path=str(path), moved_to=str(moved), error=problem)
        opened = _open_or_raise(path, sidecar)
        _restart_chain(opened, reservation, "corrupt", {"moved_to": str(moved), "error": problem})
        return opened
    if opened is None:
        opened = _open_or_raise(path, sidecar)
    if opened.head_seq == 0 and reservation.reserved > 0:
        # The file vanished, was emptied or replaced while seqs had been handed out.
        _restart_chain(opened, reservation, "corrupt", {"error": "spool file missing or empty"})
    return opened


def _try_open(path: Path, sidecar: SeqSidecar) -> tuple[Opened | None, str | None]:
    db = None
    try:
        db = _connect(path)
        row = db.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {row[0] if row else 'no answer'}")
        return _load_state(db, sidecar), None
    except sqlite3.DatabaseError as exc:
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        return None, str(exc)


def _open_or_raise(path: Path, sidecar: SeqSidecar) -> Opened:
    try:
        return _load_state(_connect(path), sidecar)
    except sqlite3.Error as exc:
        raise PersistenceError(f"cannot open spool {path}: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        # FAST: zero deleted content only where that costs no extra I/O; ON (Debian's default)
        # rewrites every freed page, which made purging acknowledged events cost as much as writing.
        db.execute("PRAGMA secure_delete=FAST")
        db.executescript(SCHEMA)
    except sqlite3.Error:
        db.close()
        raise
    os.chmod(path, 0o600)
    return db


def _load_state(db: sqlite3.Connection, sidecar: SeqSidecar) -> Opened:
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    head_seq = int(meta.get("head_seq", 0))
    size, largest = db.execute(
        "SELECT coalesce(sum(length(body)), 0), coalesce(max(length(body)), 0) FROM events"
    ).fetchone()
    return Opened(
        db=db,
        head_seq=head_seq,
        head_hash=str(meta.get("head_hash", ZERO_HASH)),
        dropped_full=int(meta.get("dropped_full", 0)),
        acked=int(meta.get("acked", 0)),
        bytes=int(size),
        largest=int(largest),
        # A sidecar behind the file (lost, or restored from a backup) is rewritten on the next append.
        reserved=max(sidecar.read().reserved, head_seq),
    )


def _restart_chain(opened: Opened, sidecar: Reservation, reason: str, extra: dict[str, Any]) -> None:
    lo, hi = sidecar.acked + 1, sidecar.reserved
    opened.head_seq, opened.head_hash = hi, ZERO_HASH
    opened.reserved = hi
    data = {"reason": reason, "from_seq": lo, "to_seq": hi, "count": hi - lo + 1, "exact": False}
    opened.notes.append(Draft("spool.gap", "high", {**data, **extra, "chain_restart": True}))
