"""The durable outbox: SQLite in WAL mode, synchronous=FULL, used from one thread only.

Sealing (seq, prev_hash, hash) happens inside the insert transaction, so an event exists — and its seq is
spent — only once committed. seq never repeats: a sidecar file reserves seq blocks ahead of use, so even a
spool file lost to corruption cannot make seq go back. Opening, and recovering from such a loss:
`recovery.py`.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import Any

from boothguard import log
from boothguard.errors import PersistenceError
from boothguard.events import (
    SEVERITY_RANK,
    ZERO_HASH,
    AgentRef,
    Draft,
    HostRef,
    SealedBatch,
    Unsealable,
    seal_many,
)
from boothguard.spool import outbox, recovery, room
from boothguard.spool.files import Ballast, Reservation, SeqSidecar
from boothguard.spool.outbox import Chunk
from boothguard.spool.refusal import refused_draft

_log = log.get("spool")

RESERVE_STEP = 10_000
SQLITE_FULL = 13
# Loss reports are never dropped themselves: that would make the loss silent.
KEEP_RANK = 5
_severity, _type = attrgetter("severity"), attrgetter("type")


@dataclass(frozen=True)
class SpoolStats:
    head_seq: int
    depth: int
    bytes: int
    oldest_created: float | None
    dropped_full: int
    dead_letters: int
    disk_full: bool


@dataclass(frozen=True)
class Sealing:
    """Drafts sealed ahead of their commit: they exist only once `Spool.commit` returns."""

    drafts: list[Draft]
    first_seq: int
    raws: list[bytes]
    last_hash: str
    now: float
    notes: list[Draft]  # queued notes this sealing took; queued again by a rewind

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.raws) - 1


def _nothing() -> None:
    pass


class Spool:
    def __init__(
        self,
        path: Path,
        *,
        host: HostRef,
        agent: AgentRef,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
        reserve_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.host, self.agent = host, agent
        self.max_bytes = max_bytes
        self.clock = clock
        self._sidecar = SeqSidecar(path.with_name(path.name + ".seq"))
        self._ballast = Ballast(path.with_name(path.name + ".reserve"), reserve_bytes)
        self._db: sqlite3.Connection | None = None
        self.head_seq = 0  # the chain's head as sealed; may run ahead of the commits
        self.head_hash = ZERO_HASH
        self._committed = (0, ZERO_HASH)  # the head as committed
        self._reserved = 0
        self._bytes = 0  # bodies on disk, acknowledged-but-not-purged ones included
        self._largest = 0
        self._acked = 0  # every seq up to here is acknowledged; its row may still be on disk
        self.dropped_full = 0
        self.refused = 0  # drafts sealed as spool.refused (the collector would have refused them)
        self.disk_full = False
        self._pending_notes: list[Draft] = []

    # -- opening --------------------------------------------------------------------------------------

    def open(self) -> list[dict[str, Any]]:
        """Open (recovering from corruption: `recovery.py`); returns recovery events already committed."""
        opened = recovery.open_spool(self.path, self._sidecar, self.clock)
        self._db = opened.db
        self.head_seq, self.head_hash = opened.head_seq, opened.head_hash
        self._committed = (opened.head_seq, opened.head_hash)
        self.dropped_full, self._acked = opened.dropped_full, opened.acked
        self._bytes, self._largest = opened.bytes, opened.largest
        self._reserved = opened.reserved
        self._pending_notes.extend(opened.notes)
        self._ballast.ensure()
        return self._flush_notes()

    def _acked_watermark(self, committed_head: int) -> int:
        # Every seq below the oldest one still spooled has been acknowledged (or dropped and declared).
        row = self._conn.execute("SELECT min(seq) FROM events WHERE seq > ?", (self._acked,)).fetchone()
        return (int(row[0]) - 1) if row[0] is not None else committed_head

    def _reserve_seqs(self, upto: int, committed_head: int) -> None:
        self._sidecar.write(Reservation(upto, self._acked_watermark(committed_head)))
        self._reserved = upto

    # -- writing --------------------------------------------------------------------------------------

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise PersistenceError("spool is not open")
        return self._db

    def append_batch(self, drafts: Sequence[Draft]) -> SealedBatch:
        """Seal and commit drafts in one transaction (group commit). Raises PersistenceError.

        Returns every committed event, including internal notes (recovery, loss reports).
        """
        for attempt in range(3):
            sealing = self.seal(drafts)
            try:
                return self.commit(sealing)
            except BaseException as exc:
                self.rewind([sealing])
                if not _disk_full(exc):
                    if isinstance(exc, sqlite3.Error | OSError):
                        raise PersistenceError(f"spool write failed: {exc}") from exc
                    raise
            self._on_disk_full(attempt)
        raise PersistenceError("spool write failed: disk full even after releasing the reserve")

    def _flush_notes(self) -> list[dict[str, Any]]:
        return [sealed.body for sealed in self.append_batch([])] if self._pending_notes else []

    def seal(self, drafts: Sequence[Draft]) -> Sealing:
        """Seal queued notes and `drafts` onto the chain's head. No database access: the writer seals a
        burst while the previous commit waits for its fsync (see SpoolWriter)."""
        notes, self._pending_notes = self._pending_notes, []
        all_drafts = [*notes, *drafts]
        first, now = self.head_seq + 1, self.clock()
        try:
            raws = self._seal_all(all_drafts, now)
        except BaseException:
            self._pending_notes = notes + self._pending_notes
            raise
        return Sealing(all_drafts, first, raws, self.head_hash, now, notes)

    def commit(self, sealing: Sealing, before_commit: Callable[[], None] = _nothing) -> SealedBatch:
        """Write a sealing in one transaction. `before_commit` (idempotent) runs when only the COMMIT
        is left, and on any failure; nothing is sealed after `sealing` until it has run.

        Raises what SQLite or the sidecar raised, after rolling back; the caller rewinds.
        """
        db = self._conn
        saved = self._bytes, self.dropped_full
        drafts, raws = list(sealing.drafts), list(sealing.raws)
        last_seq, last_hash = sealing.last_seq, sealing.last_hash
        try:
            db.execute("BEGIN IMMEDIATE")
            size = sum(map(len, raws))
            if self._bytes + size > self.max_bytes:
                gap = self._make_room(size)
                if gap is not None:
                    # The loss report goes in this same transaction, after the events it declares.
                    drafts.append(gap)
                    raws += self._seal_all([gap], sealing.now)
                    last_seq, last_hash = self.head_seq, self.head_hash
                    size = sum(map(len, raws))
            if last_seq > self._reserved:
                self._reserve_seqs(last_seq + RESERVE_STEP, self._committed[0])
            # Rows zipped in C: no Python code runs per event between the sealer and SQLite.
            db.executemany(
                "INSERT INTO events (seq, rank, body, created) VALUES (?, ?, ?, ?)",
                zip(range(sealing.first_seq, last_seq + 1), _ranks(drafts), raws, repeat(sealing.now)),
            )
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [
                    ("head_seq", str(last_seq)),
                    ("head_hash", last_hash),
                    ("dropped_full", str(self.dropped_full)),
                ],
            )
            before_commit()
            db.execute("COMMIT")
        except BaseException:
            before_commit()
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._bytes, self.dropped_full = saved
            raise
        self._committed = (last_seq, last_hash)
        self._bytes += size
        self._largest = max(self._largest, max(map(len, raws), default=0))
        if self.disk_full:
            self.disk_full = not self._ballast.ensure()
        return SealedBatch(drafts, sealing.first_seq, raws)

    def rewind(self, sealings: Sequence[Sealing]) -> None:
        """Forget sealings that were not committed: the chain goes on from the last commit (their seqs
        were never stored nor shipped), and the notes they carried are queued again."""
        self.head_seq, self.head_hash = self._committed
        self._pending_notes = [note for sealing in sealings for note in sealing.notes] + self._pending_notes

    def _seal_all(self, drafts: list[Draft], now: float) -> list[bytes]:
        """Seal `drafts` onto the head. A draft the collector would refuse is replaced, in the list, by its
        `spool.refused` report: the seq is taken by an event that explains it (rare: the batch is sealed
        again)."""
        if not drafts:
            return []
        while True:
            try:
                raws, self.head_hash = seal_many(
                    drafts,
                    first_seq=self.head_seq + 1,
                    prev_hash=self.head_hash,
                    host=self.host,
                    agent=self.agent,
                    unix=now,
                )
                break
            except Unsealable as exc:
                refused = drafts[exc.index]
                _log.error("spool_refused", type=refused.type, problem=exc.problem)
                drafts[exc.index] = refused_draft(refused, exc.problem, exc.size)
                self.refused += 1
        self.head_seq += len(drafts)
        return raws

    def _make_room(self, needed: int) -> Draft | None:
        """Free room inside the caller's transaction: acknowledged rows first, then the oldest of the
        lowest severities; returns the loss report to seal after this batch, if anything unsent went."""
        db = self._conn
        purged = room.purge_acked(db, self._acked)
        self._bytes -= purged
        dropped = room.drop_oldest(db, self._bytes + needed - self.max_bytes, self._acked)
        if not dropped:
            return None
        self._bytes -= sum(length for _, _, length in dropped)
        self.dropped_full += len(dropped)
        return room.loss_report(dropped, self.max_bytes)

    def _on_disk_full(self, attempt: int) -> None:
        _log.error("spool_disk_full", attempt=attempt, path=str(self.path))
        if not self.disk_full:
            self.disk_full = True
            self._pending_notes.append(
                Draft("spool.disk_full", "critical", {"path": str(self.path), "reserve_released": True})
            )
        self._ballast.release()
        if attempt >= 1:
            # Free pages inside the file for the inserts to reuse; the loss is declared as a gap.
            gap = self._shrink(self._bytes // 2)
            if gap is not None:
                self._pending_notes.append(gap)

    def _shrink(self, target: int) -> Draft | None:
        db = self._conn
        try:
            db.execute("BEGIN IMMEDIATE")
            saved = self.max_bytes
            self.max_bytes = target
            try:
                gap = self._make_room(0)
            finally:
                self.max_bytes = saved
            db.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            return None
        return gap

    # -- reading and acknowledging --------------------------------------------------------------------

    def read(self, max_events: int, max_bytes: int, after_seq: int = 0) -> Chunk | None:
        """The oldest unacknowledged events after `after_seq`: at most `max_events`, and at most
        `max_bytes` of NDJSON unless the first event alone is larger."""
        capped = self._largest * max_events > 4 * max_bytes
        return outbox.read(self._conn, max(after_seq, self._acked), max_events, max_bytes, capped=capped)

    def ack(self, seqs: Sequence[int]) -> None:
        """Acknowledge: advance the watermark. Rows are purged when none unacknowledged is left (the
        cheap whole-table delete) or when room is needed — not with a delete per batch."""
        acked, freed, truncated = outbox.ack(self._conn, self._acked, self._committed[0], seqs)
        self._acked = acked
        self._bytes = 0 if truncated else self._bytes - freed

    def dead_letter(self, items: Sequence[tuple[int, str]]) -> None:
        """Move events the collector rejected out of the queue, keeping them for inspection."""
        db = self._conn
        try:
            db.execute("BEGIN IMMEDIATE")
            freed = 0
            for seq, error in items:
                row = db.execute("DELETE FROM events WHERE seq = ? RETURNING body", (seq,)).fetchone()
                if row is None:
                    continue
                freed += len(row[0])
                db.execute(
                    "INSERT OR REPLACE INTO dead_letter (seq, body, error, time) VALUES (?, ?, ?, ?)",
                    (seq, row[0], error[:1000], self.clock()),
                )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise PersistenceError(f"spool dead-letter failed: {exc}") from exc
        self._bytes -= freed

    def stats(self) -> SpoolStats:
        db = self._conn
        depth, oldest = db.execute(
            "SELECT count(*), min(created) FROM events WHERE seq > ?", (self._acked,)
        ).fetchone()
        dead = db.execute("SELECT count(*) FROM dead_letter").fetchone()[0]
        return SpoolStats(
            self._committed[0], int(depth), self._bytes, oldest, self.dropped_full, int(dead), self.disk_full
        )

    def close(self) -> None:
        self._close_quietly()

    def _close_quietly(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


def _ranks(drafts: list[Draft]) -> list[int]:
    ranks = list(map(SEVERITY_RANK.__getitem__, map(_severity, drafts)))
    if "spool.gap" in map(_type, drafts):
        for i, draft in enumerate(drafts):
            if draft.type == "spool.gap":
                ranks[i] = KEEP_RANK
    return ranks


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC  # the sidecar's write
