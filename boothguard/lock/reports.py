"""The events the away state machine reports besides a lock attempt's own result (`verify.Attempt.data`)."""

from __future__ import annotations

from boothguard.events import Draft
from boothguard.lock.state import AwayRecord


def terminated(sid: str, rec: AwayRecord, error: str | None) -> Draft:
    """The lock could not be proven and the session was ended instead (or that failed too: critical)."""
    data = {
        "session": sid,
        "source": rec.source,
        "method": "terminate",
        "result": "terminate_failed" if error else "terminated",
        "error": error,
    }
    return Draft("screen.lock_failed", "critical" if error else "high", data, user=rec.user)


def no_target(source: str, reason: str, *, logind_connected: bool) -> Draft:
    """An away signal with no session to lock."""
    data = {
        "session": None,
        "source": source,
        "reason": reason,
        "method": "logind",
        "result": "no_session",
        "error": "no graphical session" if logind_connected else "logind not reachable",
        "timings": {"signal_to_request_ms": None, "request_to_verified_ms": None},
    }
    return Draft("screen.lock_failed", "high", data)


def away_ended(rec: AwayRecord, source: str, now: float) -> Draft:
    data = {
        "session": rec.session,
        "source": source,
        "away_source": rec.source,
        "duration_s": round(max(0.0, now - rec.since), 3),
    }
    return Draft("away.ended", "info", data, user=rec.user)
