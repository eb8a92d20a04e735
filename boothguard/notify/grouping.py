"""Rate limiting and grouping, pure: items in with a time, batches out when due.

A key (kind, target session) collects items until it has been quiet for `quiet` seconds, or `max_delay`
after its first item, and never sooner than `cooldown` after the key's last batch. A burst of twenty blocked
devices is one batch with count 20. Bounded: at most `max_keys` pending keys (the rest counted as lost)
and a few sample items per batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_SAMPLES = 5


@dataclass(frozen=True)
class Policy:
    quiet: float = 1.0
    max_delay: float = 4.0
    cooldown: float = 10.0


# Countdowns and remote locks are timely or pointless: no waiting for quiet.
DEFAULT_POLICIES: dict[str, Policy] = {
    "usb_blocked": Policy(),
    "clipboard_cleared": Policy(),
    "capture_stopped": Policy(),
    "idle_lock_warning": Policy(quiet=0.0, max_delay=0.0, cooldown=0.0),
    "remote_lock": Policy(quiet=0.0, max_delay=0.0, cooldown=5.0),
}

Key = tuple[str, str | None]  # (kind, session id or None for every session)


@dataclass(frozen=True)
class Batch:
    kind: str
    session: str | None
    count: int
    samples: tuple[Mapping[str, Any], ...]
    first_at: float
    due_at: float

    @property
    def params(self) -> dict[str, Any]:
        """What the watcher renders: the first item's parameters and the count."""
        return {**(self.samples[0] if self.samples else {}), "count": self.count}


@dataclass
class _Pending:
    first: float
    last: float
    count: int = 0
    samples: list[Mapping[str, Any]] = field(default_factory=list)


class Grouper:
    def __init__(self, policies: Mapping[str, Policy] | None = None, max_keys: int = 64) -> None:
        self.policies = dict(DEFAULT_POLICIES if policies is None else policies)
        self.max_keys = max_keys
        self._pending: dict[Key, _Pending] = {}
        self._last_batch: dict[Key, float] = {}
        self.lost = 0

    def policy(self, kind: str) -> Policy:
        return self.policies.get(kind, Policy())

    def add(self, kind: str, session: str | None, params: Mapping[str, Any], now: float) -> bool:
        """False when too many keys are pending (the item is counted in `lost`)."""
        key = (kind, session)
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self.max_keys:
                self.lost += 1
                return False
            pending = self._pending[key] = _Pending(first=now, last=now)
        pending.count += 1
        pending.last = now
        if len(pending.samples) < MAX_SAMPLES:
            pending.samples.append(dict(params))
        return True

    def _due_at(self, key: Key, pending: _Pending) -> float:
        p = self.policy(key[0])
        at = min(pending.last + p.quiet, pending.first + p.max_delay)
        last = self._last_batch.get(key)
        return at if last is None else max(at, last + p.cooldown)

    def next_due(self) -> float | None:
        return min((self._due_at(k, v) for k, v in self._pending.items()), default=None)

    def due(self, now: float) -> list[Batch]:
        out = []
        for key, pending in list(self._pending.items()):
            at = self._due_at(key, pending)
            if now >= at:
                del self._pending[key]
                self._last_batch[key] = now
                out.append(Batch(key[0], key[1], pending.count, tuple(pending.samples), pending.first, at))
        if len(self._last_batch) > 4 * self.max_keys:  # forget the oldest cooldowns
            for key in sorted(self._last_batch, key=self._last_batch.__getitem__)[: self.max_keys]:
                del self._last_batch[key]
        return out

    @property
    def pending(self) -> int:
        return sum(p.count for p in self._pending.values())
