"""Simulated booths: each one's events sealed ahead of time with the agent's own chain code.

A booth's day, compressed by `beat` (60 s is real time): a heartbeat every `beat` seconds, carrying the same
fields the agent's daemon sends, and about one security event per `beat` at a random moment. Events are
sealed with `boothguard.events.seal_many` (what the spool does), so seq, prev_hash and hash are the real
agent's; the load loop only joins and gzips what is due.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from boothguard.events import ZERO_HASH, AgentRef, Draft, HostRef, seal_many

Role = Literal["steady", "stops", "reconnects"]
AGENT = AgentRef(version="fleet-sim")
# (type, severity, data) of the security events a booth produces, most of them quiet; a few raise alerts
# (personal data copied), as on a real floor.
_SECURITY: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("clipboard.copy", "medium", {"app": "crm.exe", "formats": ["UTF8_STRING"], "size": 120, "pii": {}}),
    ("clipboard.copy", "medium", {"app": "crm.exe", "formats": ["UTF8_STRING"], "size": 64, "pii": {}}),
    ("usb.device.allowed", "info", {"vendor_id": "046d", "product_id": "c31c", "product": "Keyboard"}),
    ("screen.locked", "info", {"reason": "away", "verified": True}),
    ("screen.unlocked", "info", {"reason": "user"}),
    ("away.started", "info", {"idle_seconds": 300}),
    ("away.ended", "info", {"idle_seconds": 0}),
)
_PII = (
    "clipboard.copy",
    "high",
    {"app": "crm.exe", "formats": ["UTF8_STRING"], "size": 18, "pii": {"phone_jp": 1}},
)


@dataclass
class Planned:
    due: float  # seconds after the start of the run
    seq: int
    raw: bytes


@dataclass
class Booth:
    index: int
    host: HostRef
    role: Role
    token: str = ""
    collector: int = 0  # which collector process it posts to
    planned: deque[Planned] = field(default_factory=deque)  # not yet produced
    pending: deque[Planned] = field(default_factory=deque)  # produced, not yet acknowledged
    acked: dict[int, bytes] = field(default_factory=dict)  # seq → raw, answered accepted or duplicate
    in_flight: bool = False
    failures: int = 0
    last_ack: float = 0.0  # run clock: when the collector last answered 2xx
    stop_at: float | None = None  # stops for good (killed agent, pulled cable)
    away: tuple[float, float] | None = None  # network lost between these times; backlog shipped after


def host_id(index: int) -> str:
    return f"f1ee7{index:027x}"  # 32 hex digits, like /etc/machine-id


def plan(
    booth: Booth, *, start: float, seconds: float, beat: float, backlog: int, rng: random.Random
) -> None:
    """Seal `booth`'s events for a run of `seconds` starting at UNIX time `start`."""
    times: list[tuple[float, Draft]] = []
    phase = rng.uniform(0, beat)
    t = phase
    depth = 0
    while t < seconds:
        if booth.away and booth.away[0] <= t < booth.away[1]:
            depth += 1  # what the spool holds while the network is gone
        times.append((t, Draft("agent.heartbeat", "info", heartbeat_data(beat, depth, t))))
        t += beat
    t = rng.uniform(0, beat)
    while t < seconds:
        kind, severity, data = _PII if rng.random() < 0.02 else rng.choice(_SECURITY)
        times.append((t, Draft(kind, severity, data)))  # type: ignore[arg-type]
        t += rng.expovariate(1 / beat)
    if booth.away is not None:
        # A busy operator while the network was out: the backlog the shipper sends on reconnecting.
        lo, hi = booth.away
        times += [
            (rng.uniform(lo, hi), Draft("clipboard.copy", "medium", _SECURITY[0][2])) for _ in range(backlog)
        ]
    times.sort(key=lambda x: x[0])
    prev, seq = ZERO_HASH, 1
    for due, draft in times:
        [raw], prev = seal_many(
            [draft], first_seq=seq, prev_hash=prev, host=booth.host, agent=AGENT, unix=start + due
        )
        booth.planned.append(Planned(due, seq, raw))
        seq += 1


def heartbeat_data(beat: float, depth: int, uptime: float) -> dict[str, Any]:
    """The fields `agent.daemon.heartbeat_data` sends."""
    return {
        "interval_seconds": beat,
        "last_seq": 0,
        "spool_depth": depth,
        "spool_bytes": depth * 900,
        "oldest_unsent_age_s": 0,
        "dropped": {"queue_full": 0, "spool_full": 0},
        "dead_letters": 0,
        "disk_full": False,
        "plugins_failed": [],
        "boot_id": "5f1d0c0e-6a53-4f6b-9a55-0c1b7f3e2d10",
        "uptime_s": round(uptime, 1),
    }


def make_fleet(
    n: int, *, collectors: int, stop_fraction: float, reconnect_fraction: float, rng: random.Random
) -> list[Booth]:
    fleet = [
        Booth(i, HostRef(id=host_id(i), name=f"booth-{i:05d}"), "steady", collector=i % collectors)
        for i in range(n)
    ]
    order = list(range(n))
    rng.shuffle(order)
    n_stop = max(1, round(n * stop_fraction)) if stop_fraction > 0 else 0
    n_back = max(1, round(n * reconnect_fraction)) if reconnect_fraction > 0 else 0
    for i in order[:n_stop]:
        fleet[i].role = "stops"
    for i in order[n_stop : n_stop + n_back]:
        fleet[i].role = "reconnects"
    return fleet


def plan_burst(booth: Booth, n: int, *, start: float) -> None:
    """`n` events all due at once: a booth that ships as fast as the collector answers (capacity, floor)."""
    drafts = [Draft("clipboard.copy", "medium", _SECURITY[0][2]) for _ in range(n)]
    raws, _ = seal_many(drafts, first_seq=1, prev_hash=ZERO_HASH, host=booth.host, agent=AGENT, unix=start)
    booth.planned.extend(Planned(0.0, i + 1, raw) for i, raw in enumerate(raws))
