"""Room in a full spool: acknowledged rows go first, then the oldest of the lowest severities, declared."""

from __future__ import annotations

import sqlite3

from boothguard import log
from boothguard.events import SEVERITIES, Draft
from boothguard.spool.outbox import URGENT_RANK

_log = log.get("spool")
# Drop order when full: the lowest severities first; higher ones only when nothing lower is left.
# Rank 5 (loss reports) is in no tier: a loss report is never dropped, or the loss would be silent.
DROP_TIERS: tuple[tuple[int, ...], ...] = ((0, 1), (2,), (3,), (4,))
Dropped = list[tuple[int, int, int]]  # seq, rank, body length


def purge_acked(db: sqlite3.Connection, acked: int) -> int:
    """Delete acknowledged rows still on disk; returns the bytes freed."""
    size = "SELECT coalesce(sum(length(body)), 0) FROM events WHERE seq <= ?"
    freed = int(db.execute(size, (acked,)).fetchone()[0])
    if freed:
        db.execute("DELETE FROM events WHERE seq <= ?", (acked,))
    return freed


def drop_oldest(db: sqlite3.Connection, to_free: int, acked: int) -> Dropped:
    """Delete unsent events, lowest tier and oldest first, until `to_free` bytes are freed."""
    dropped: Dropped = []
    for tier in DROP_TIERS:
        if to_free <= 0:
            break
        marks = ",".join("?" * len(tier))
        cur = db.execute(
            f"SELECT seq, rank, length(body) FROM events WHERE rank IN ({marks}) AND seq > ? "  # noqa: S608
            "ORDER BY seq",
            (*tier, acked),
        )
        for seq, rank, length in cur:
            dropped.append((seq, rank, length))
            to_free -= length
            if to_free <= 0:
                break
    if dropped:
        db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s, _, _ in dropped])
    return dropped


def loss_report(dropped: Dropped, max_bytes: int) -> Draft:
    by_severity: dict[str, int] = {}
    for _, rank, _ in dropped:
        by_severity[SEVERITIES[rank]] = by_severity.get(SEVERITIES[rank], 0) + 1
    worst = max(rank for _, rank, _ in dropped)
    _log.warning("spool_full_dropped", count=len(dropped), by_severity=by_severity)
    return Draft(
        "spool.gap",
        "high" if worst >= URGENT_RANK else "medium",
        {
            "reason": "full",
            "from_seq": dropped[0][0],
            "to_seq": max(s for s, _, _ in dropped),
            "count": len(dropped),
            "by_severity": by_severity,
            "max_bytes": max_bytes,
        },
    )
