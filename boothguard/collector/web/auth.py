"""Dashboard login pieces: failed-login throttling, CSRF tokens, cookie attributes.

Sessions themselves are the collector's API sessions (`users.create_session`): the cookie carries the
session token, the database keeps only its hash and expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass

SESSION_COOKIE = "bg_session"
LOGIN_CSRF_COOKIE = "bg_login_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def csrf_token(session_token: str) -> str:
    """Bound to the session: unguessable without the session cookie, nothing extra to store."""
    return hmac.new(session_token.encode(), b"boothguard-dashboard-csrf", hashlib.sha256).hexdigest()


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


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
