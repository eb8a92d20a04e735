"""The stored event after v5: `raw` is the one copy (data derived from it), and the chain skeleton.

A skeleton is an event retention compacted: seq, id, type, time, severity, prev_hash and hash remain, the
content (`raw`, `data`, `user`) is gone and `compacted` says when. Its own hash can no longer be
recomputed, but its link can still be checked: its prev_hash against the event before, its hash against
the next event's prev_hash, so the whole events kept around it still prove they descend from one chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from boothguard.collector.schema import audit_log, events
from boothguard.events import Chained, Event

PURGE_ACTION = "retention.compact"  # the audit log's action for a retention run


def stored_data(raw: str | None) -> dict[str, Any] | None:
    """An event's `data`, from the line stored as received (None for a skeleton or a line gone bad)."""
    if raw is None:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class Skeleton:
    """A compacted event as the chain check sees it (`boothguard.events.Chained`)."""

    seq: int
    type: str
    prev_hash: str
    hash: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def hash_ok(self) -> bool:
        return True  # nothing left to hash: the link to its neighbours is what still holds


def compacted_values(now: float) -> dict[str, Any]:
    """What an UPDATE sets to turn rows into skeletons (SQL NULLs, not JSON null)."""
    return {"data": sa.null(), "raw": sa.null(), "user": sa.null(), "compacted": now}


def is_whole() -> sa.ColumnElement[bool]:
    """Rows that still have their content: what listings and searches show."""
    return events.c.raw.is_not(None)


def ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Ascending runs of consecutive seqs."""
    out: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


@dataclass(frozen=True)
class StoredChain:
    """A host's stored rows as the chain check takes them: whole events and skeletons, in seq order."""

    links: list[Chained]
    unparsable: list[int]
    skeletons: list[int]


CHAIN_COLUMNS = (
    events.c.seq,
    events.c.raw,
    events.c.type,
    events.c.prev_hash,
    events.c.hash,
    events.c.compacted,
)


@dataclass(frozen=True)
class Purges:
    """One host's audited retention runs: run time (= the rows' `compacted`) -> the seq spans it compacted,
    or None when the run's entry could not list every host."""

    runs: dict[float, list[tuple[int, int]] | None]

    def cover(self, seq: int, compacted: float) -> bool:
        if compacted not in self.runs:
            return False
        spans = self.runs[compacted]
        return spans is None or any(lo <= seq <= hi for lo, hi in spans)


def audited_purges(conn: Connection, host_id: str) -> Purges:
    q = sa.select(audit_log.c.time, audit_log.c.detail).where(audit_log.c.action == PURGE_ACTION)
    runs: dict[float, list[tuple[int, int]] | None] = {}
    for when, detail in conn.execute(q):
        span = (detail.get("hosts") or {}).get(host_id) if isinstance(detail, dict) else None
        if span is not None:
            listed = runs.setdefault(float(when), [])
            if listed is not None:
                listed.append((int(span["from_seq"]), int(span["to_seq"])))
        elif isinstance(detail, dict) and detail.get("hosts_not_listed"):
            runs[float(when)] = None
    return Purges(runs)


def stored_chain(rows: Iterable[Sequence[Any]], purges: Purges) -> StoredChain:
    """`rows`: CHAIN_COLUMNS. A row whose content is gone is a skeleton only if an audited retention run
    accounts for it; otherwise (deleted by hand, or "compacted" outside retention) it is unparsable (bad)."""
    links: list[Chained] = []
    unparsable: list[int] = []
    skeletons: list[int] = []
    for seq, raw, type_, prev_hash, hash_, compacted in rows:
        if raw is None and compacted is not None and purges.cover(int(seq), float(compacted)):
            links.append(Skeleton(int(seq), str(type_), str(prev_hash), str(hash_)))
            skeletons.append(int(seq))
            continue
        try:
            links.append(Event.model_validate_json(raw))
        except ValidationError:
            unparsable.append(int(seq))
    return StoredChain(links, unparsable, skeletons)
