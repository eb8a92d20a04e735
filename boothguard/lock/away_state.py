"""The away state machine, driven by what logind tells us: present → away (locking) → locked | lock_failed →
present (unlock), with an optional re-lock while away; sessions that end; restoring after a (re)connect."""

from __future__ import annotations

import asyncio
import contextlib

from boothguard import log
from boothguard.events import Draft
from boothguard.lock.away_base import AwayBase
from boothguard.lock.logind import LogindError, SessionSignal, with_changes
from boothguard.lock.state import AwayRecord

_log = log.get("lock.away")


class AwayStateMachine(AwayBase):
    async def refresh(self) -> None:
        fresh = {s.id: s for s in await self.logind.list_sessions()}
        old = self.cache
        self.cache = fresh
        for sid, info in fresh.items():
            before = old.get(sid)
            if before is not None and before.locked_hint != info.locked_hint:
                self._locked_changed(sid, info.locked_hint, self.mono())
            elif before is None and info.locked_hint:
                self._lock_event(sid).set()
        for sid in set(old) - set(fresh):
            self._session_gone(sid)

    def _on_logind(self, sig: SessionSignal) -> None:
        if sig.kind == "changed":
            info = self.cache.get(sig.session_id)
            if info is not None:
                self.cache[sig.session_id] = with_changes(info, sig.changed)
            if "LockedHint" in sig.changed:
                self._locked_changed(sig.session_id, bool(sig.changed["LockedHint"]), sig.at)
        elif sig.kind == "new":
            self._spawn(self._add_session(sig.path))
        elif sig.kind == "removed":
            self.cache.pop(sig.session_id, None)
            self._session_gone(sig.session_id)
        else:
            _log.debug("logind_session_signal", kind=sig.kind, session=sig.session_id)

    async def _add_session(self, path: str) -> None:
        with contextlib.suppress(LogindError):
            info = await self.logind.session_at(path)
            self.cache[info.id] = info

    def _locked_changed(self, sid: str, locked: bool, at: float) -> None:
        ev = self._lock_event(sid)
        rec = self.records.get(sid)
        if locked:
            self._observed_at[sid] = at
            ev.set()
            if rec is not None and rec.phase in ("lock_failed", "unlocked") and sid not in self._inflight:
                rec.phase, rec.method = "locked", "late"
                self._cancel_relock(sid)
                self._spawn(self._late_lock(sid, rec))
            return
        ev.clear()
        if rec is None or rec.phase != "locked":
            return
        self._spawn(self._unlocked(sid, rec))

    async def _late_lock(self, sid: str, rec: AwayRecord) -> None:
        await self._save()
        data = {"session": sid, "source": rec.source, "method": "late", "result": "verified"}
        await self.events.emit(Draft("screen.locked", "info", data, user=rec.user))

    async def _unlocked(self, sid: str, rec: AwayRecord) -> None:
        relock = self.settings.relock_after_seconds
        await self.events.emit(
            Draft("screen.unlocked", "info", {"session": sid, "away_source": rec.source}, user=rec.user)
        )
        if relock <= 0:
            if self.records.get(sid) is rec:
                del self.records[sid]
                self._present_since[sid] = self.mono()
                await self._save()
                await self._emit_ended(rec, "unlock")
            return
        rec.phase = "unlocked"
        await self._save()
        loop = asyncio.get_running_loop()
        self._cancel_relock(sid)
        self._relock[sid] = loop.call_later(relock, lambda: self._spawn(self._relock_now(sid)))

    async def _relock_now(self, sid: str) -> None:
        self._relock.pop(sid, None)
        rec = self.records.get(sid)
        if rec is None or rec.phase == "locked" or sid in self._inflight:
            return
        await self.away(rec.source, "relock while away", [sid])

    def _session_gone(self, sid: str) -> None:
        self._locked.pop(sid, None)
        rec = self.records.pop(sid, None)
        if rec is not None:
            self._cancel_relock(sid)
            self._spawn(self._ended_gone(rec))

    async def _ended_gone(self, rec: AwayRecord) -> None:
        await self._save()
        await self._emit_ended(rec, "session_ended")

    async def _restore(self) -> None:
        """After a (re)connect: persisted away sessions stay away, and are locked again if they are not."""
        for sid, rec in list(self.records.items()):
            info = self.cache.get(sid)
            if info is None:
                self._session_gone(sid)
            elif info.locked_hint:
                if rec.phase != "locked":
                    rec.phase = "locked"
                    await self._save()
            elif sid not in self._inflight:
                gate = asyncio.Event()
                gate.set()
                rec.phase = "locking"
                self._track(
                    sid,
                    self._lock(
                        sid, rec, self.mono(), gate, source=rec.source, reason=rec.reason, resumed=True
                    ),
                )
