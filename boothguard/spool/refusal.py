"""Events the collector would refuse, refused by the agent first (the limits of `boothguard.envelope_limits`).

`boothguard emit` checks before a seq is taken and answers with the reason (exit 2). Any other draft — a
plugin's, a watcher's — is checked as it is sealed (cheaply, see `events.seal_many`); one that fails is
sealed as `spool.refused` in its place, so its seq is neither a hole in the chain nor an event the collector
dead-letters.
"""

from __future__ import annotations

import time

from boothguard.envelope_limits import INT_MAX, envelope_problem
from boothguard.events import ZERO_HASH, AgentRef, Draft, HostRef, RefusedDraft, Unsealable, seal_many

MAX_PROBLEM_CHARS = 300


def draft_problem(draft: Draft, host: HostRef, agent: AgentRef) -> str | None:
    """Why `draft` cannot be stored by the collector, or None: every check, exactly (for `emit`)."""
    problem = envelope_problem(dict(draft.data), where="data")
    if problem is not None:
        return problem
    try:
        # The largest seq there is: the size is an upper bound, whatever seq the event gets.
        seal_many([draft], first_seq=INT_MAX, prev_hash=ZERO_HASH, host=host, agent=agent, unix=time.time())
    except Unsealable as exc:
        return exc.problem
    return None


def refused_draft(draft: Draft, problem: str, size: int | None) -> RefusedDraft:
    data = {
        "type": draft.type,
        "severity": draft.severity,
        "problem": problem[:MAX_PROBLEM_CHARS],
        "bytes": size,
    }
    return RefusedDraft("spool.refused", "high", data, original=draft)
