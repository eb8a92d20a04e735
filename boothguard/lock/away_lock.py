"""One lock attempt: LockSession → verified (LockedHint / screensaver) or the in-session fallbacks →
escalation (terminate), reported as `screen.locked` / `screen.lock_failed` with timings."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from boothguard import log
from boothguard.events import Draft
from boothguard.lock.away_base import AwayBase
from boothguard.lock.logind import LogindError
from boothguard.lock.state import AwayRecord

_log = log.get("lock.away")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@dataclass
class _Attempt:
    """What one lock attempt learned; becomes the lock event's data."""

    method: str = "logind"
    verified_by: str | None = None
    signal_to_request: float | None = None
    request_to_verified: float | None = None
    error: str | None = None
    fallback: dict[str, Any] | None = None
    observed_at: float | None = None


class LockAttempts(AwayBase):
    async def _lock(
        self,
        sid: str,
        rec: AwayRecord,
        signal_at: float,
        gate: asyncio.Event,
        *,
        source: str,
        reason: str,
        resumed: bool = False,
    ) -> bool:
        info = self.cache.get(sid)
        attempt = _Attempt()
        locked = self._lock_event(sid)
        if not (info is not None and info.locked_hint):
            locked.clear()
        requested_at = self.mono()
        attempt.signal_to_request = requested_at - signal_at
        try:
            await self.logind.lock_session(sid)
        except LogindError as exc:
            attempt.error = str(exc)
            _log.warning("lock_session_failed", session=sid, error=str(exc))
        deadline = requested_at + self.settings.verify_seconds
        verified_by = await self._verify(sid, deadline) if attempt.error is None else None
        if verified_by is None:
            verified_by = await self._fallback(sid, attempt)
        if verified_by is not None:
            attempt.verified_by = verified_by
            end = self._observed_at.get(sid) if verified_by == "locked_hint" else None
            end = end if end is not None and end >= requested_at else self.mono()
            attempt.request_to_verified = end - requested_at
            attempt.observed_at = end
        await gate.wait()  # away.started is committed first
        ok = verified_by is not None
        if ok:
            rec.phase, rec.method = "locked", attempt.method
            self.counters["locks_verified"] += 1
        else:
            rec.phase = "lock_failed"
            self.counters["locks_failed"] += 1
        # The event and the state file are written side by side: the spool commit is what proves the lock.
        report = self._emit_lock_result(sid, rec, attempt, source=source, reason=reason, resumed=resumed)
        if sid in self.records:
            await asyncio.gather(self._save(), report)
        else:
            await report
        if not ok and self.settings.terminate_on_failure:
            await self._terminate(sid, rec)
        return ok

    async def _verify(self, sid: str, deadline: float) -> str | None:
        locked = self._lock_event(sid)
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
                info = self.cache.get(sid)
                if info is not None and self.logind.connected:
                    with contextlib.suppress(LogindError):
                        if await self.logind.locked_hint(info, timeout=max(0.1, remaining)):
                            self._locked_changed(sid, True, self.mono())
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

    async def _fallback(self, sid: str, attempt: _Attempt) -> str | None:
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
            await self._verify(sid, started + self.settings.verify_seconds) if answer.get("ok") else None
        )
        if verified is not None:
            attempt.method = f"fallback:{method}"
        return verified

    async def _terminate(self, sid: str, rec: AwayRecord) -> None:
        try:
            await self.logind.terminate_session(sid)
            result, error = "terminated", None
        except LogindError as exc:
            result, error = "terminate_failed", str(exc)
        await self.events.emit(
            Draft(
                "screen.lock_failed",
                "critical" if error else "high",
                {
                    "session": sid,
                    "source": rec.source,
                    "method": "terminate",
                    "result": result,
                    "error": error,
                },
                user=rec.user,
            )
        )

    async def _emit_lock_result(
        self, sid: str, rec: AwayRecord, a: _Attempt, *, source: str, reason: str, resumed: bool
    ) -> None:
        data: dict[str, Any] = {
            "session": sid,
            "source": source,
            "reason": reason,
            "method": a.method,
            "result": "verified" if a.verified_by else "unverified",
            "verified_by": a.verified_by,
            "timings": {
                "signal_to_request_ms": _ms(a.signal_to_request),
                "request_to_verified_ms": _ms(a.request_to_verified),
            },
        }
        if a.error:
            data["error"] = a.error
        if a.fallback is not None:
            data["fallback"] = a.fallback
        if resumed:
            data["resumed"] = True
        self.last_attempt_timings = _ms(a.signal_to_request)
        if a.verified_by:
            await self.events.emit(Draft("screen.locked", "info", data, user=rec.user))
            if a.observed_at is not None:
                self.last_verified_emit = (a.observed_at, self.mono())
        else:
            await self.events.emit(Draft("screen.lock_failed", "high", data, user=rec.user))

    # For the benchmark and status: the last verified lock's (LockedHint observed, committed) times.
    last_verified_emit: tuple[float, float] | None = None

    last_attempt_timings: float | None = None

    async def _no_target(self, source: str, reason: str, signal_at: float) -> None:
        why = "no graphical session" if self.logind.connected else "logind not reachable"
        self.counters["locks_failed"] += 1
        await self.events.emit(
            Draft(
                "screen.lock_failed",
                "high",
                {
                    "session": None,
                    "source": source,
                    "reason": reason,
                    "method": "logind",
                    "result": "no_session",
                    "error": why,
                    "timings": {"signal_to_request_ms": None, "request_to_verified_ms": None},
                },
            )
        )
