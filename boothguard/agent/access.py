"""The trust boundary in one place: who may call each watcher op, at what rate, and what a watcher may say.

Read like USBGuard's IPC policy: default deny. An op not named in `WATCHER_OPS` is not a watcher op; an event
type not named in `WATCHER_EVENTS` is refused from a non-root peer, and a named one is capped in severity
(the agent decides how bad a thing is, not the operator's process). Every non-root connection is rate
limited per op with a token bucket (root is the agent's own tooling and could stop the agent anyway); what
is shed is counted and declared (`watcher.flood`).

Who (the `Access` values):
- `root`: uid 0 only;
- `emitter`: root, or a member of the configured emitter group;
- `any`: any local uid — the op then checks against the logind session the peer is bound to (`owner`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from boothguard.agent.plugin import Access

# The envelope's order (boothguard.events.SEVERITY_RANK), not imported: the watcher's CLI imports this module
# through the control socket's limits and must stay free of pydantic.
_RANK: Final[dict[str, int]] = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True)
class OpRule:
    access: Access
    rate_per_s: float  # sustained requests per second per connection
    burst: int  # bucket size
    bound: bool  # the caller must hold a bound watcher registration (its own logind session)


# Every watcher op, who may call it and its per-connection budget.
WATCHER_OPS: Final[dict[str, OpRule]] = {
    "watcher.register": OpRule("any", rate_per_s=0.5, burst=5, bound=False),
    "watcher.heartbeat": OpRule("any", rate_per_s=10.0, burst=20, bound=True),
    "watcher.event": OpRule("any", rate_per_s=20.0, burst=100, bound=True),
    "watcher.reply": OpRule("any", rate_per_s=10.0, burst=20, bound=True),
    "watcher.goodbye": OpRule("any", rate_per_s=0.5, burst=2, bound=True),
}

# Event types a non-root watcher may send, each with the highest severity it may carry. The ceilings are
# the highest the watcher's policy code assigns; anything above is clamped and the claim kept as data.
WATCHER_EVENTS: Final[dict[str, str]] = {
    "clipboard.copy": "high",
    "clipboard.paste": "high",
    "clipboard.cleared": "info",
    "screenshot.detected": "high",
    "screenshot.blocked": "high",
    "session.watcher_degraded": "medium",
    "session.events_dropped": "medium",
}

# Agent-owned: never from a watcher, whoever it claims to be (listed so a refusal can say why).
AGENT_EVENTS: Final[frozenset[str]] = frozenset(
    {
        "session.started",
        "session.ended",
        "session.watcher_missing",
        "session.register_denied",
        "watcher.flood",
        "screen.locked",
        "spool.gap",
    }
)

# Control socket: connections per uid (root is exempt: the agent's own tools and systemd run as root).
MAX_CONNECTIONS_PER_UID: Final = 16
# A request line longer than this is refused; the reader's buffer never grows past it.
MAX_LINE_BYTES: Final = 128 * 1024
# How often (seconds) a connection's shed counts become a `watcher.flood` event, at most.
FLOOD_REPORT_SECONDS: Final = 5.0


def capped_severity(etype: str, claimed: str) -> str:
    """The severity an event from a watcher is stored with (the claim itself is kept by the caller)."""
    ceiling = WATCHER_EVENTS[etype]
    return claimed if _RANK[claimed] <= _RANK[ceiling] else ceiling


@dataclass
class Bucket:
    rate: float
    burst: int
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class ConnectionBudget:
    """Per-connection token buckets, one per op, and the count of what they shed."""

    clock: Callable[[], float]
    buckets: dict[str, Bucket] = field(default_factory=dict)
    shed: dict[str, int] = field(default_factory=dict)
    shed_total: int = 0
    reported_total: int = 0
    last_report: float = 0.0

    def admit(self, op: str) -> bool:
        rule = WATCHER_OPS.get(op)
        if rule is None:
            return True  # not a watcher op: its own plugin decides
        now = self.clock()
        bucket = self.buckets.get(op)
        if bucket is None:
            bucket = self.buckets[op] = Bucket(rule.rate_per_s, rule.burst, float(rule.burst), now)
        if bucket.take(now):
            return True
        self.shed[op] = self.shed.get(op, 0) + 1
        self.shed_total += 1
        return False

    def due_report(self, force: bool = False) -> dict[str, int] | None:
        """The shed counts since the last report, if there are some and a report is due (or forced)."""
        now = self.clock()
        if self.shed_total == self.reported_total:
            return None
        if not force and now - self.last_report < FLOOD_REPORT_SECONDS:
            return None
        self.last_report = now
        self.reported_total = self.shed_total
        counts, self.shed = self.shed, {}
        return counts
