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

from boothguard.collector.schema import events
from boothguard.events import Chained, Event


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


def stored_chain(rows: Iterable[Sequence[Any]]) -> StoredChain:
    """`rows`: CHAIN_COLUMNS. A row with no content that retention did not compact is unparsable (bad)."""
    links: list[Chained] = []
    unparsable: list[int] = []
    skeletons: list[int] = []
    for seq, raw, type_, prev_hash, hash_, compacted in rows:
        if raw is None and compacted is not None:
            links.append(Skeleton(int(seq), str(type_), str(prev_hash), str(hash_)))
            skeletons.append(int(seq))
            continue
        try:
            links.append(Event.model_validate_json(raw))
        except ValidationError:
            unparsable.append(int(seq))
    return StoredChain(links, unparsable, skeletons)
