"""After a lock: seeing the unlock, a missing watcher or a reconnect, and locking again where the away state
holds (the away state machine's second half; the first is `away.py`).

An unlock is seen as LockedHint turning false, logind's Unlock signal (only acted on while the watcher is
missing: otherwise the locker answers it), or, for a lock proven by the X grab alone, the grab going away.
It is answered by the end of the away state, by a re-lock after `relock_after_seconds` when the away state is
meant to hold, or, when the session's watcher is missing, by a lock at once (nobody would see what the
unlocked session does). A LockedHint that comes after an attempt gave up is judged here too (a late lock),
and after a reconnect to logind the persisted away sessions are locked again if they are not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from boothguard import log
from boothguard.agent.plugin import EventEmitter
from boothguard.events import Draft
from boothguard.lock.logind import SessionInfo
from boothguard.lock.settings import LockSection
from boothguard.lock.state import AwayRecord
from boothguard.lock.verify import Attempt, LockedHints, Verifier

_log = log.get("lock.relock")


class AwayHost(Protocol):
    """What the relock side needs of the away state machine (`away.AwayController`)."""

    settings: LockSection
    records: dict[str, AwayRecord]
    watcher_missing: set[str]
    events: EventEmitter
    hints: LockedHints
    verifier: Verifier
    counters: dict[str, int]
    mono: Callable[[], float]
    stopping: bool

    def session(self, sid: str) -> SessionInfo | None:
        """The session as logind last told it, None when unknown."""

    def session_gone(self, sid: str) -> None:
        """The session ended: its record is dropped and the end reported."""

    def in_flight(self, sid: str) -> bool:
        """A lock attempt for the session is running."""

    def resume(self, sid: str, rec: AwayRecord) -> None:
        """Lock a persisted away session again."""

    async def away(
        self, source: str, reason: str, session_ids: list[str] | None = None, at: float | None = None
    ) -> dict[str, bool]:
        """Lock the named sessions."""

    async def end(self, sid: str, rec: AwayRecord, source: str) -> None:
        """The session is present again (if `rec` is still its record): persisted, then reported."""

    async def save(self) -> None:
        """Persist the records and the watcher-missing set."""

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run coro as a tracked background task."""


class Relocker:
    def __init__(self, host: AwayHost) -> None:
        self.host = host
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._late: set[str] = set()  # sessions whose late LockedHint is being looked at

    def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()

    def cancel(self, sid: str) -> None:
        """No re-lock is pending for the session any more."""
        handle = self._timers.pop(sid, None)
        if handle is not None:
            handle.cancel()

    def watcher_changed(self, sid: str, kind: str, at: float) -> None:
        """The session's watcher is back, or missing: then the session is locked until the watcher is back."""
        host = self.host
        if kind in ("watcher_back", "registered"):
            if sid in host.watcher_missing:
                host.watcher_missing.discard(sid)
                host.spawn(host.save())
        elif kind == "watcher_missing" and host.settings.lock_on_watcher_missing:
            if sid not in host.watcher_missing:
                host.watcher_missing.add(sid)
                host.spawn(host.save())  # kept across an agent restart: nobody else would tell it again
            known = host.session(sid)
            if known is not None and not (known.graphical and known.active):
                return
            if sid in host.records and host.records[sid].phase == "locked":
                return
            host.spawn(host.away("watcher_missing", "session watcher missing", [sid], at))

    async def restore(self) -> None:
        """After a (re)connect: persisted away sessions stay away, and are locked again if they are not."""
        host = self.host
        for sid in [s for s in host.watcher_missing if host.session(s) is None]:
            host.session_gone(sid)  # ended while we were away
        for sid, rec in list(host.records.items()):
            info = host.session(sid)
            if info is None:
                host.session_gone(sid)
            elif info.locked_hint and rec.phase == "locked":
                continue
            elif not host.in_flight(sid):
                # Unlocked, or a hint not judged yet (maybe the operator's own SetLockedHint): try again.
                host.resume(sid, rec)

    def locked_changed(self, sid: str, locked: bool, at: float) -> None:
        host = self.host
        rec = host.records.get(sid)
        if locked:
            host.hints.locked(sid, at)
            if rec is None or rec.phase not in ("lock_failed", "unlocked"):
                return
            if not host.in_flight(sid) and sid not in self._late:
                self._late.add(sid)
                host.spawn(self._late_lock(sid, rec))
            return
        host.hints.unlocked(sid)
        self.unlock_seen(sid, "locked_hint")

    def unlock_seen(self, sid: str, via: str) -> None:
        rec = self.host.records.get(sid)
        if rec is None or rec.phase != "locked":
            return
        rec.phase = "unlocked"  # at once: two sources of the same unlock (hint and grab) are handled once
        self.host.spawn(self._unlocked(sid, rec, via))

    async def watch_grab(self, sid: str, rec: AwayRecord) -> None:
        """A lock proven by the X grab only: the grab going away is the unlock (i3lock exits on unlock)."""
        host = self.host
        while host.records.get(sid) is rec and rec.phase == "locked" and not host.stopping:
            await asyncio.sleep(host.settings.x11_poll_seconds)
            if host.records.get(sid) is not rec or rec.phase != "locked":
                return
            state = await host.verifier.x11_state(sid)
            if state is not None and not state.grabbed:
                self.unlock_seen(sid, "x11_grab")
                return

    async def _late_lock(self, sid: str, rec: AwayRecord) -> None:
        """LockedHint came after the attempt gave up: a lock if it is a proof (the same rules as in time)."""
        host = self.host
        try:
            attempt = Attempt(method="late")
            proof = await host.verifier.proof_now(sid, attempt)
            if proof is None:
                _log.warning("late_lock_not_proven", session=sid, evidence=attempt.evidence)
                return
            if host.records.get(sid) is not rec or rec.phase not in ("lock_failed", "unlocked"):
                return
            if host.in_flight(sid):
                return
            rec.phase, rec.method = "locked", "late"
            self.cancel(sid)
            await host.save()
            data = {
                "session": sid,
                "source": rec.source,
                "method": "late",
                "result": "verified",
                "verified_by": proof,
                "evidence": attempt.evidence,
            }
            await host.events.emit(Draft("screen.locked", "info", data, user=rec.user))
            if proof == "x11_grab":
                host.spawn(self.watch_grab(sid, rec))
        finally:
            self._late.discard(sid)

    async def _unlocked(self, sid: str, rec: AwayRecord, via: str) -> None:
        host = self.host
        relock = host.settings.relock_after_seconds
        missing = sid in host.watcher_missing and host.settings.lock_on_watcher_missing
        data = {"session": sid, "away_source": rec.source, "via": via, "watcher_missing": missing}
        await host.events.emit(Draft("screen.unlocked", "medium" if missing else "info", data, user=rec.user))
        if missing:
            # Unlocked with nobody watching: locked again until a watcher is back for the session.
            host.counters["relocked_watcher_missing"] += 1
            _log.warning("relock_watcher_missing", session=sid, via=via)
            self.cancel(sid)
            await host.save()
            if not host.in_flight(sid):
                host.spawn(
                    host.away("watcher_missing", "unlocked while the session watcher is missing", [sid])
                )
            return
        if relock <= 0:
            await host.end(sid, rec, "unlock")
            return
        rec.phase = "unlocked"
        await host.save()
        loop = asyncio.get_running_loop()
        self.cancel(sid)
        self._timers[sid] = loop.call_later(relock, lambda: host.spawn(self._relock_now(sid)))

    async def _relock_now(self, sid: str) -> None:
        self._timers.pop(sid, None)
        rec = self.host.records.get(sid)
        if rec is None or rec.phase == "locked" or self.host.in_flight(sid):
            return
        await self.host.away(rec.source, "relock while away", [sid])
