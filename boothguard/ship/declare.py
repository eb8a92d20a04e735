"""What the shipper tells the collector about events it gave up on: a `spool.gap` per run of seqs.

A dead-lettered event is a hole in the chain the collector stores. Declared (`reason: rejected`, with the
seqs and why), the hole is explained — `collector.chain.declared_gap`, not "Event chain broken".
"""

from __future__ import annotations

from collections.abc import Sequence

from boothguard.events import Draft, merge_ranges

MAX_ERRORS = 5
MAX_ERROR_CHARS = 200
MAX_SEQS = 100  # per declaration; from_seq/to_seq always give the whole run


def rejected_gaps(items: Sequence[tuple[int, str]]) -> list[Draft]:
    """One `spool.gap` per run of consecutive dead-lettered seqs (events between runs were delivered)."""
    errors: dict[int, str] = dict(items)
    drafts = []
    for lo, hi in merge_ranges((seq, seq) for seq in errors):
        seqs = range(lo, hi + 1)
        why = sorted({errors[s][:MAX_ERROR_CHARS] for s in seqs})[:MAX_ERRORS]
        data = {
            "reason": "rejected",
            "from_seq": lo,
            "to_seq": hi,
            "count": hi - lo + 1,
            "exact": True,
            "seqs": list(seqs[:MAX_SEQS]),
            "errors": why,
        }
        drafts.append(Draft("spool.gap", "high", data))
    return drafts
