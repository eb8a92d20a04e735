"""Dashboard login pieces: CSRF tokens, cookie attributes (the login throttle is `login_guard`'s).

Sessions themselves are the collector's API sessions (`users.create_session`): the cookie carries the
session token, the database keeps only its hash and expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from boothguard.collector.login_guard import LoginThrottle, ThrottleLimits

__all__ = ["LoginThrottle", "ThrottleLimits"]  # the dashboard's tests and callers use them from here

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
