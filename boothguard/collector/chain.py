"""Incremental chain checking for one host, the stored-state twin of `boothguard.events.verify_chain`.

State: events 1..seq are stored and were checked; `hash` is the hash of event `seq`. Each ingest walks
forward from there over the stored events that follow. A hole (missing seqs before a stored one) is
skipped silently when a stored `spool.gap` declares it, reported as a gap once it has waited `grace`
seconds for late or reordered batches, and otherwise left pending. A `spool.gap` with a zero
prev_hash restarts the chain (the agent's spool was corrupt); its link is not checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from boothguard.events import ZERO_HASH

Kind = Literal["gap", "backwards", "broken_link", "bad_hash", "declared_gap"]
# How alarming each finding is; a declared gap is reported, not treated as tampering.
FINDING_SEVERITY: dict[str, Literal["medium", "high", "critical"]] = {
    "gap": "high",
    "backwards": "critical",
    "broken_link": "critical",
    "bad_hash": "critical",
    "declared_gap": "medium",
}


class Link(NamedTuple):
    """What the walk needs of a stored event."""

    seq: int
    type: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Finding:
    kind: Kind
    seq_from: int
    seq_to: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainState:
    seq: int = 0
    hash: str = ZERO_HASH
    hole_since: float | None = None


@dataclass(frozen=True)
class Walk:
    state: ChainState
    findings: list[Finding]


def is_restart(link: Link) -> bool:
    return link.type == "spool.gap" and link.prev_hash == ZERO_HASH


def covered(lo: int, hi: int, declared: Iterable[tuple[int, int]]) -> bool:
    return any(a <= lo and hi <= b for a, b in declared)


def advance(
    state: ChainState,
    following: Sequence[Link],
    declared: Callable[[], list[tuple[int, int]]],
    *,
    now: float,
    grace: float,
) -> Walk:
    """Walk `following` (stored events with seq > state.seq, ascending) as far as the chain allows.

    `declared` is called only when a hole is met: the (from_seq, to_seq) ranges of stored `spool.gap`s.
    """
    seq, head, hole_since = state.seq, state.hash, state.hole_since
    findings: list[Finding] = []
    ranges: list[tuple[int, int]] | None = None
    for link in following:
        if link.seq <= seq:
            continue
        if link.seq > seq + 1:
            lo, hi = seq + 1, link.seq - 1
            if ranges is None:
                ranges = declared()
            if not covered(lo, hi, ranges):
                since = now if hole_since is None else hole_since
                if now - since < grace:
                    return Walk(ChainState(seq, head, since), findings)
                findings.append(Finding("gap", lo, hi, {"missing": hi - lo + 1}))
            hole_since = None
            seq, head = link.seq, link.hash
            continue
        if link.prev_hash != head and not is_restart(link):
            findings.append(
                Finding(
                    "broken_link",
                    link.seq,
                    link.seq,
                    {"expected_prev_hash": head, "prev_hash": link.prev_hash},
                )
            )
        seq, head = link.seq, link.hash
    return Walk(ChainState(seq, head, None), findings)


def declared_range(data: Any) -> tuple[int, int] | None:
    """The seqs a `spool.gap` declares lost, if its data says so sensibly."""
    if not isinstance(data, dict):
        return None
    lo, hi = data.get("from_seq"), data.get("to_seq")
    if type(lo) is int and type(hi) is int and 1 <= lo <= hi:
        return lo, hi
    return None
