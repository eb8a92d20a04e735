"""The spool's outbox: unsent events read as a ready NDJSON batch, and acks kept as a watermark.

Both run on the spool's connection and thread. Python's sqlite3 releases the GIL around every
sqlite3_step, so a step per event (fetchall, DELETE … RETURNING) makes the shipper queue for the GIL
behind other threads once per event: here a batch costs one or two steps.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from boothguard.errors import PersistenceError
from boothguard.events import SEVERITY_RANK, merge_ranges

URGENT_RANK = SEVERITY_RANK["high"]


@dataclass(frozen=True)
class Chunk:
    """The oldest unsent events, ready for the wire: their seqs and their bodies as NDJSON."""

    seqs: tuple[int, ...]
    ndjson: bytes  # each body followed by "\n" (canonical JSON never contains a raw newline)
    oldest_created: float
    urgent_created: float | None  # the oldest high/critical one, if any

    def bodies(self) -> list[bytes]:
        return self.ndjson.split(b"\n")[:-1]


# A whole batch in one row, one step.
_READ = """
SELECT group_concat(seq), CAST(group_concat(body, char(10)) AS BLOB), min(created),
       min(CASE WHEN rank >= ? THEN created END)
FROM (SELECT seq, rank, body, created FROM events WHERE seq > ? ORDER BY seq LIMIT ?)
"""
# With events large enough to overshoot the byte cap many times over, stop at the cap in SQL (a running
# sum; the first event goes even when it alone is over it) rather than read and trim.
_READ_CAPPED = """
SELECT group_concat(seq), CAST(group_concat(body, char(10)) AS BLOB), min(created),
       min(CASE WHEN rank >= ? THEN created END)
FROM (SELECT seq, rank, body, created, sum(length(body) + 1) OVER (ORDER BY seq) AS run
      FROM (SELECT seq, rank, body, created FROM events WHERE seq > ? ORDER BY seq LIMIT ?))
WHERE run <= ? OR run = length(body) + 1
"""


def read(
    db: sqlite3.Connection, after: int, max_events: int, max_bytes: int, *, capped: bool
) -> Chunk | None:
    params = (URGENT_RANK, after, max_events, max_bytes) if capped else (URGENT_RANK, after, max_events)
    seqs_text, joined, oldest, urgent = db.execute(_READ_CAPPED if capped else _READ, params).fetchone()
    if seqs_text is None:
        return None
    seqs = tuple(map(int, seqs_text.split(",")))
    ndjson = bytes(joined) + b"\n"
    if list(seqs) != sorted(seqs) or len(ndjson) > max_bytes:
        seqs, ndjson = ordered_within(seqs, ndjson, max_bytes)
    return Chunk(seqs, ndjson, float(oldest), None if urgent is None else float(urgent))


def ordered_within(seqs: tuple[int, ...], ndjson: bytes, max_bytes: int) -> tuple[tuple[int, ...], bytes]:
    """Seq order (SQLite does not promise an aggregate's order; seq and body stay paired), then the
    byte cap: as many events as fit, and at least one."""
    pairs = sorted(zip(seqs, ndjson.split(b"\n")[:-1], strict=True))
    total = keep = 0
    for _, body in pairs:
        if keep and total + len(body) + 1 > max_bytes:
            break
        total += len(body) + 1
        keep += 1
    kept = pairs[:keep]
    return tuple(seq for seq, _ in kept), b"".join(body + b"\n" for _, body in kept)


def ack(db: sqlite3.Connection, acked: int, head_seq: int, seqs: Sequence[int]) -> tuple[int, int, bool]:
    """Advance the watermark over `seqs`; returns (new watermark, bytes freed, table emptied)."""
    out_of_order = []
    for lo, hi in _ranges(seqs):
        if hi <= acked:
            continue
        if lo <= acked + 1 or not _unacked_between(db, acked, lo):
            acked = hi
        else:
            out_of_order.append((lo, hi))  # unusual: these rows are deleted now
    truncate = acked >= head_seq
    # An ack lost to a power cut only means a resend (the collector counts a duplicate), so it
    # skips the fsync; the next event commit (synchronous=FULL) makes it durable anyway.
    db.execute("PRAGMA synchronous=NORMAL")
    freed = 0
    try:
        if out_of_order or truncate:
            db.execute("BEGIN IMMEDIATE")
        for lo, hi in out_of_order:
            size = "SELECT coalesce(sum(length(body)), 0) FROM events WHERE seq BETWEEN ? AND ?"
            freed += int(db.execute(size, (lo, hi)).fetchone()[0])
            db.execute("DELETE FROM events WHERE seq BETWEEN ? AND ?", (lo, hi))
        if truncate:
            db.execute("DELETE FROM events")  # no WHERE: SQLite drops the pages, no per-row work
        # Alone, this is its own transaction: one statement, one step for the usual ack.
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('acked', ?)", (str(acked),))
        if db.in_transaction:
            db.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise PersistenceError(f"spool ack failed: {exc}") from exc
    finally:
        db.execute("PRAGMA synchronous=FULL")
    return acked, freed, truncate


def _unacked_between(db: sqlite3.Connection, acked: int, below: int) -> bool:
    row = db.execute("SELECT 1 FROM events WHERE seq > ? AND seq < ? LIMIT 1", (acked, below)).fetchone()
    return row is not None


def _ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    if seqs and max(seqs) - min(seqs) == len(seqs) - 1 == len(set(seqs)) - 1:
        return [(min(seqs), max(seqs))]  # a whole batch: skip sorting it
    return merge_ranges((s, s) for s in seqs)
