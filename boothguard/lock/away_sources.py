"""Away signals into the state machine: `away` (collector, CLI, HTTP, VPN, idle, watcher missing) and `back`;
the session watchers' idle and liveness reports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from boothguard.events import Draft
from boothguard.lock.away_base import AwayBase, clean_reason
from boothguard.lock.logind import LogindError, SessionInfo
from boothguard.lock.state import AwayRecord


class AwaySources(AwayBase):
    def graphical_sessions(self) -> list[SessionInfo]:
        return [s for s in self.cache.values() if s.graphical]

    async def away(
        self, source: str, reason: str, session_ids: list[str] | None = None, at: float | None = None
    ) -> dict[str, bool]:
        """Lock the named sessions (all graphical ones when None); True per session once verified."""
        signal_at = self.mono() if at is None else at
        self.counters["signals"] += 1
        reason = clean_reason(reason)
        targets = list(session_ids) if session_ids is not None else [s.id for s in self.graphical_sessions()]
        if not targets:
            if session_ids is None and self.logind.connected:
                # A session may have started since the last refresh; look once before giving up.
                with contextlib.suppress(LogindError):
                    await self.refresh()
                targets = [s.id for s in self.graphical_sessions()]
            if not targets:
                await self._no_target(source, reason, signal_at)
                return {}
        tasks: dict[str, asyncio.Task[bool]] = {}
        gates: list[asyncio.Event] = []
        announce: list[AwayRecord] = []
        for sid in dict.fromkeys(targets):
            if sid in self._inflight:
                tasks[sid] = self._inflight[sid]
                continue
            rec = self.records.get(sid)
            info = self.cache.get(sid)
            if rec is not None and rec.phase == "locked" and info is not None and info.locked_hint:
                continue  # already away and locked
            if rec is None:
                rec = AwayRecord(sid, info.user if info else None, source, reason, self.wall())
                self.records[sid] = rec
                announce.append(rec)
            self._cancel_relock(sid)
            rec.phase = "locking"
            gate = asyncio.Event()
            gates.append(gate)
            tasks[sid] = self._track(sid, self._lock(sid, rec, signal_at, gate, source=source, reason=reason))
        try:
            await asyncio.sleep(0)  # let the lock tasks send LockSession before we persist and report
            if announce:
                await self._save()
                for rec in announce:
                    data = {"session": rec.session, "source": source, "reason": reason}
                    await self.events.emit(Draft("away.started", "info", data, user=rec.user))
        finally:
            for gate in gates:
                gate.set()
        results = await asyncio.gather(*tasks.values(), return_exceptions=True)
        out = {sid: r is True for sid, r in zip(tasks, results, strict=True)}
        for sid in targets:
            out.setdefault(sid, True)
        return out

    async def back(self, source: str, session_ids: list[str]) -> list[str]:
        ended = []
        for sid in session_ids:
            rec = self.records.pop(sid, None)
            if rec is None:
                continue
            self._cancel_relock(sid)
            self._present_since[sid] = self.mono()
            ended.append(rec)
        if ended:
            await self._save()
        for rec in ended:
            await self._emit_ended(rec, source)
        return [r.session for r in ended]

    def on_session_watcher(self, session_id: str, kind: str, info: Mapping[str, Any]) -> None:
        """SessionsService listener: idle time and watcher liveness become away signals."""
        at = self.mono()
        if kind == "idle":
            threshold = self.settings.idle_seconds
            seconds = info.get("seconds")
            if not threshold or not isinstance(seconds, int | float) or seconds < threshold:
                return
            if session_id in self.records or session_id in self._inflight:
                return
            # An idle report older than the last return to present is stale.
            since = self._present_since.get(session_id)
            if since is not None and at - since < threshold:
                return
            self._spawn(self.away("idle", f"idle for {int(seconds)} s", [session_id], at))
        elif kind == "watcher_missing" and self.settings.lock_on_watcher_missing:
            known = self.cache.get(session_id)
            if known is not None and not (known.graphical and known.active):
                return
            if session_id in self.records and self.records[session_id].phase == "locked":
                return
            self._spawn(self.away("watcher_missing", "session watcher missing", [session_id], at))
