"""Every way of presenting a password (HTTP Basic on /v1/*, `POST /v1/sessions`, the dashboard's `/login`)
goes through one `LoginGuard`: one failed-login throttle per account and per source address, and a bound on
concurrent argon2 checks (64 MiB each), so a flood of guesses is answered 429/503 at once instead of
queueing memory-hard work (issue 19).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Literal

import anyio
from sqlalchemy.engine import Engine

from boothguard import log
from boothguard.collector import users

_log = log.get("collector.login_guard")


@dataclass(frozen=True)
class ThrottleLimits:
    per_user: int = 5  # failed logins per account within `window`
    per_client: int = 20  # failed logins per client address within `window`
    window: float = 15 * 60
    max_keys: int = 10_000  # bounded memory: the oldest keys are forgotten first


class LoginThrottle:
    """Refuses logins for a user or client address with too many recent failures (this process only)."""

    def __init__(self, limits: ThrottleLimits | None = None) -> None:
        self.limits = limits or ThrottleLimits()
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self.forgotten = 0  # keys evicted to stay bounded

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._fails.get(key)
        if times is None:
            return deque()
        while times and now - times[0] > self.limits.window:
            times.popleft()
        return times

    def retry_after(self, user: str, client: str, now: float) -> float | None:
        """Seconds until a login may be tried again, or None when it may be tried now."""
        waits = []
        for key, limit in ((f"u:{user}", self.limits.per_user), (f"c:{client}", self.limits.per_client)):
            times = self._recent(key, now)
            if len(times) >= limit:
                waits.append(times[0] + self.limits.window - now)
        return max(waits) if waits else None

    def failed(self, user: str, client: str, now: float) -> None:
        for key in (f"u:{user}", f"c:{client}"):
            times = self._fails.setdefault(
                key, deque(maxlen=max(self.limits.per_user, self.limits.per_client))
            )
            times.append(now)
            self._fails.move_to_end(key)
        while len(self._fails) > self.limits.max_keys:
            self._fails.popitem(last=False)
            self.forgotten += 1

    def succeeded(self, user: str) -> None:
        self._fails.pop(f"u:{user}", None)


Outcome = Literal["ok", "bad", "throttled", "busy"]


@dataclass(frozen=True)
class Checked:
    outcome: Outcome
    principal: users.Principal | None = None
    retry_after: float = 0.0  # seconds, for "throttled" and "busy"


@dataclass
class LoginGuard:
    """The throttle and the argon2 bound, shared by the API and the dashboard of one collector process."""

    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    max_checks: int = 4  # concurrent password verifications (argon2id: 64 MiB each)
    active: int = 0  # touched only on the event loop
    busy_refused: int = 0  # checks refused because `max_checks` were running

    async def check(self, engine: Engine, name: str, password: str, client: str, now: float) -> Checked:
        wait = self.throttle.retry_after(name, client, now)
        if wait is not None:
            _log.warning("login_throttled", user=name[:128], client=client)
            return Checked("throttled", retry_after=wait)
        if self.active >= self.max_checks:
            self.busy_refused += 1
            return Checked("busy", retry_after=1.0)
        self.active += 1
        try:
            who = await anyio.to_thread.run_sync(users.check_password, engine, name, password)
        finally:
            self.active -= 1
        if who is None:
            self.throttle.failed(name, client, now)
            _log.warning("login_failed", user=name[:128], client=client)
            return Checked("bad")
        self.throttle.succeeded(name)
        return Checked("ok", who)
