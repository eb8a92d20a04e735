"""Proof that a lock took: logind's LockedHint (signalled, or asked when the signal is late), else the
session watcher's screensaver state; when neither comes, the configured fallback commands, then proof again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from boothguard import log
from boothguard.agent.plugin import SessionsService
from boothguard.lock.logind import Logind, LogindError, SessionInfo
from boothguard.lock.settings import LockSection

_log = log.get("lock.verify")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@dataclass
class Attempt:
    """What one lock attempt learned; becomes the lock event's data."""

    method: str = "logind"
    verified_by: str | None = None
    signal_to_request: float | None = None
    request_to_verified: float | None = None
    error: str | None = None
    fallback: dict[str, Any] | None = None
    observed_at: float | None = None

    def data(self, sid: str, *, source: str, reason: str, resumed: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "session": sid,
            "source": source,
            "reason": reason,
            "method": self.method,
            "result": "verified" if self.verified_by else "unverified",
            "verified_by": self.verified_by,
            "timings": {
                "signal_to_request_ms": _ms(self.signal_to_request),
                "request_to_verified_ms": _ms(self.request_to_verified),
            },
        }
        if self.error:
            out["error"] = self.error
        if self.fallback is not None:
            out["fallback"] = self.fallback
        if resumed:
            out["resumed"] = True
        return out


class LockedHints:
    """Per session: an asyncio.Event set while logind says the session is locked, and when that was seen."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._seen_at: dict[str, float] = {}

    def event(self, sid: str) -> asyncio.Event:
        return self._events.setdefault(sid, asyncio.Event())

    def locked(self, sid: str, at: float) -> None:
        self._seen_at[sid] = at
        self.event(sid).set()

    def unlocked(self, sid: str) -> None:
        self.event(sid).clear()

    def seen_at(self, sid: str) -> float | None:
        return self._seen_at.get(sid)

    def forget(self, sid: str) -> None:
        self._events.pop(sid, None)


class Verifier:
    """Waits for proof of one session's lock; runs the fallbacks. Settings are read at each attempt."""

    def __init__(
        self,
        *,
        settings: LockSection,
        logind: Logind,
        hints: LockedHints,
        session: Callable[[str], SessionInfo | None],
        sessions: Callable[[], SessionsService | None],
        on_locked: Callable[[str, float], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.logind = logind
        self.hints = hints
        self._session = session
        self._sessions = sessions
        self._on_locked = on_locked  # the state machine hears of a LockedHint we had to ask for
        self.mono = monotonic

    async def verify(self, sid: str, deadline: float) -> str | None:
        locked = self.hints.event(sid)
        while True:
            remaining = deadline - self.mono()
            if locked.is_set():
                return "locked_hint"
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(locked.wait(), min(0.5, remaining))
            except TimeoutError:
                # Not every logind emits PropertiesChanged promptly: ask.
                info = self._session(sid)
                if info is not None and self.logind.connected:
                    with contextlib.suppress(LogindError):
                        if await self.logind.locked_hint(info, timeout=max(0.1, remaining)):
                            self._on_locked(sid, self.mono())
        svc = self._sessions()
        if svc is None:
            return None
        try:
            state = await svc.request(sid, "screensaver_state", self.settings.screensaver_timeout_seconds)
        except Exception as exc:  # another plugin's failure must not stop the escalation
            _log.warning("screensaver_state_failed", session=sid, error=str(exc))
            return None
        if state is not None and state.get("active") is True:
            return "screensaver"
        return None

    async def fallback(self, sid: str, attempt: Attempt) -> str | None:
        svc = self._sessions()
        commands = self.settings.fallback_commands
        if svc is None or not commands:
            attempt.fallback = {
                "ran": False,
                "why": "no session watcher" if svc is None else "none configured",
            }
            return None
        started = self.mono()
        try:
            answer = await svc.request(
                sid, "lock_fallback", self.settings.fallback_timeout_seconds, commands=commands
            )
        except Exception as exc:
            _log.warning("lock_fallback_failed", session=sid, error=str(exc))
            answer = None
        if answer is None:
            attempt.fallback = {"ran": False, "why": "watcher did not answer"}
            return None
        method = str(answer.get("method") or "unknown")
        attempt.fallback = {"ran": True, "ok": bool(answer.get("ok")), "method": method}
        verified = (
            await self.verify(sid, started + self.settings.verify_seconds) if answer.get("ok") else None
        )
        if verified is not None:
            attempt.method = f"fallback:{method}"
        return verified
