"""Proof that a lock took: logind's LockedHint (signalled, or asked when the signal is late), or the agent's
own look at the session's X server (keyboard and pointer grabbed: `xcheck.py`). What the session watcher
says (its screensaver state) is recorded as evidence, never taken as proof: the watcher runs as the operator.
When no proof comes, the configured fallback commands, then proof again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from boothguard import log
from boothguard.agent.plugin import SessionsService
from boothguard.lock.logind import Logind, LogindError, SessionInfo
from boothguard.lock.settings import LockSection
from boothguard.lock.xcheck import XCheckError, XState

_log = log.get("lock.verify")
X_TIMEOUT = 1.0  # one X check: connect, setup and three round trips
X_POLL = 0.2  # how often the grab is looked for while a proof is awaited
XProbe = Callable[[str, frozenset[int], float], XState]  # xcheck.check (blocking; run in a thread)


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
    # What was seen, proof or not: locked_hint, x11 (the agent's check, or why it could not be made),
    # watcher_screensaver (the watcher's claim).
    evidence: dict[str, Any] = field(default_factory=dict)

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
        if self.evidence:
            out["evidence"] = dict(self.evidence)
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
        xprobe: XProbe,
    ) -> None:
        self.settings = settings
        self.logind = logind
        self.hints = hints
        self._session = session
        self._sessions = sessions
        self._on_locked = on_locked  # the state machine hears of a LockedHint we had to ask for
        self.mono = monotonic
        self._xprobe = xprobe

    def x11_display(self, sid: str) -> str | None:
        """The display the agent may check: logind's word for an X11 session (never the watcher's)."""
        info = self._session(sid)
        if not self.settings.x11_check or info is None or info.type != "x11" or not info.display:
            return None
        return info.display

    async def x11_state(self, sid: str, attempt: Attempt | None = None) -> XState | None:
        """The agent's own X check of the session; None when it cannot be made (why: in the evidence)."""
        display = self.x11_display(sid)
        if display is None:
            return None
        uids = frozenset(self.settings.x11_trusted_server_uids)
        try:
            state = await asyncio.to_thread(self._xprobe, display, uids, X_TIMEOUT)
        except XCheckError as exc:
            if attempt is not None:
                attempt.evidence["x11"] = {"display": display, "error": str(exc)}
            return None
        if attempt is not None:
            attempt.evidence["x11"] = {"display": display, **state.evidence()}
        return state

    async def proof_now(self, sid: str, attempt: Attempt) -> str | None:
        """One look for a proof: the grab (the agent's own check), else a LockedHint that counts."""
        hint = self.hints.event(sid).is_set()
        attempt.evidence["locked_hint"] = hint
        x = await self.x11_state(sid, attempt)
        if x is not None and x.grabbed:
            return "x11_grab"
        if hint and self._hint_counts(sid, x, attempt):
            return "locked_hint"
        return None

    async def verify(self, sid: str, deadline: float, attempt: Attempt) -> str | None:
        locked = self.hints.event(sid)
        while True:
            remaining = deadline - self.mono()
            proof = await self.proof_now(sid, attempt)
            if proof is not None:
                return proof
            if remaining <= 0:
                break
            if locked.is_set():  # a hint that does not count yet: look for the grab again shortly
                await asyncio.sleep(min(X_POLL, remaining))
                continue
            try:
                wait = X_POLL if self.x11_display(sid) is not None else 0.5
                await asyncio.wait_for(locked.wait(), min(wait, remaining))
            except TimeoutError:
                # Not every logind emits PropertiesChanged promptly: ask.
                info = self._session(sid)
                if info is not None and self.logind.connected:
                    with contextlib.suppress(LogindError):
                        if await self.logind.locked_hint(info, timeout=max(0.1, remaining)):
                            self._on_locked(sid, self.mono())
        await self._watcher_claim(sid, attempt)
        return None

    def _hint_counts(self, sid: str, x: XState | None, attempt: Attempt) -> bool:
        """LockedHint is settable by the session's owner: where the agent can look (x), it wants more."""
        if x is None or not self.settings.x11_corroborate_hint:
            return True
        info = self._session(sid)
        if info is not None and not info.active:
            attempt.evidence["session_active"] = False  # switched away: the seat shows something else
            return True
        return False

    async def _watcher_claim(self, sid: str, attempt: Attempt) -> None:
        """The watcher's screensaver state, for the record only: the operator can make it say anything."""
        svc = self._sessions()
        if svc is None:
            return
        try:
            state = await svc.request(sid, "screensaver_state", self.settings.screensaver_timeout_seconds)
        except Exception as exc:  # another plugin's failure must not stop the escalation
            _log.warning("screensaver_state_failed", session=sid, error=str(exc))
            return
        active = state.get("active") if state is not None else None
        attempt.evidence["watcher_screensaver"] = active if isinstance(active, bool) else None

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
            await self.verify(sid, started + self.settings.verify_seconds, attempt)
            if answer.get("ok")
            else None
        )
        if verified is not None:
            attempt.method = f"fallback:{method}"
        return verified
