"""The away state machine: away signal → LockSession → verified or not (proof and fallbacks: `verify.py`) →
escalation; unlock (seen and answered, re-lock included: `relock.py`) or `back` → present. One record per away
session, persisted.

Per session: present → away (locking) → locked | lock_failed → present (unlock, or back), with an optional
re-lock when the operator unlocks while the away state is meant to hold, and always a re-lock when the
session's watcher is missing (nobody would see what the unlocked session does).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

from boothguard import log
from boothguard.agent.plugin import EventEmitter, SessionsService
from boothguard.events import Draft
from boothguard.lock import reports
from boothguard.lock.logind import Logind, LogindError, SessionInfo, SessionSignal
from boothguard.lock.relock import Relocker
from boothguard.lock.session_cache import CacheListener, SessionCache
from boothguard.lock.settings import LockSection
from boothguard.lock.state import AwayRecord, StateStore
from boothguard.lock.verify import Attempt, LockedHints, Verifier, XProbe
from boothguard.lock.xcheck import check as x11_check

_log = log.get("lock.away")
MAX_REASON = 200


def clean_reason(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return "".join(ch for ch in text if ch.isprintable())[:MAX_REASON]


class AwayController:
    def __init__(
        self,
        *,
        settings: LockSection,
        logind: Logind,
        events: EventEmitter,
        store: StateStore,
        sessions: Callable[[], SessionsService | None],
        monotonic: Callable[[], float],
        wall_clock: Callable[[], float],
        xprobe: XProbe = x11_check,
    ) -> None:
        self.settings = settings
        self.logind = logind
        self.events = events
        self.store = store
        self.mono = monotonic
        self.wall = wall_clock
        self.records: dict[str, AwayRecord] = {}
        self.hints = LockedHints()
        # Sessions whose watcher went missing and has not come back: an unlock there is answered with a lock.
        self.watcher_missing: set[str] = set()
        self._present_since: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self.stopping = False
        self._save_lock = asyncio.Lock()
        self.counters = {"locks_verified": 0, "locks_failed": 0, "signals": 0, "relocked_watcher_missing": 0}
        self.verifier = Verifier(
            settings=settings,
            logind=logind,
            hints=self.hints,
            session=self.session,
            sessions=sessions,
            on_locked=lambda sid, at: self.relock.locked_changed(sid, True, at),
            monotonic=monotonic,
            xprobe=xprobe,
        )
        self.relock = Relocker(self)
        self.known = SessionCache(
            logind,
            CacheListener(
                locked_hint=self.relock.locked_changed,
                first_seen_locked=lambda sid: self.hints.event(sid).set(),
                gone=self.session_gone,
                connected=lambda: self.spawn(self.relock.restore()),
            ),
            refresh_seconds=lambda: self.settings.refresh_seconds,
            monotonic=monotonic,
        )
        logind.add_listener(self._on_logind)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.records = self.store.load()
        self.watcher_missing = set(self.store.watcher_missing)
        with contextlib.suppress(LogindError):
            await self.known.connect()
        if not self.logind.connected:
            _log.warning("logind_unavailable", address=self.logind.address)
        self._supervisor = asyncio.create_task(self.known.supervise(), name="lock-supervisor")

    async def stop(self) -> None:
        self.stopping = self.known.stopping = True
        self.relock.stop()
        tasks = [t for t in (self._supervisor, *self._tasks, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.save()  # a save cancelled above must not lose the last state
        await self.logind.close()

    def reconfigure(self, settings: LockSection) -> None:
        self.settings = self.verifier.settings = settings

    @property
    def cache(self) -> dict[str, SessionInfo]:
        return self.known.sessions

    # -- sources ---------------------------------------------------------------------------------

    def session(self, sid: str) -> SessionInfo | None:
        return self.known.get(sid)

    def graphical_sessions(self) -> list[SessionInfo]:
        return self.known.graphical()

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
                    await self.known.refresh()
                targets = [s.id for s in self.graphical_sessions()]
            if not targets:
                self.counters["locks_failed"] += 1
                connected = self.logind.connected
                await self.events.emit(reports.no_target(source, reason, logind_connected=connected))
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
            self.relock.cancel(sid)
            rec.phase = "locking"
            gate = asyncio.Event()
            gates.append(gate)
            tasks[sid] = self._track(sid, self._lock(sid, rec, signal_at, gate, source=source, reason=reason))
        try:
            await asyncio.sleep(0)  # let the lock tasks send LockSession before we persist and report
            if announce:
                await self.save()
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

    def _track(self, sid: str, coro: Any) -> asyncio.Task[bool]:
        task: asyncio.Task[bool] = asyncio.create_task(coro, name=f"lock-{sid}")
        self._inflight[sid] = task

        def done(t: asyncio.Task[bool]) -> None:
            if self._inflight.get(sid) is t:
                del self._inflight[sid]
            if not t.cancelled() and t.exception() is not None:
                _log.error("lock_attempt_failed", session=sid, error=repr(t.exception()))

        task.add_done_callback(done)
        return task

    async def back(self, source: str, session_ids: list[str]) -> list[str]:
        ended = []
        for sid in session_ids:
            rec = self.records.pop(sid, None)
            if rec is None:
                continue
            self.relock.cancel(sid)
            self._present_since[sid] = self.mono()
            ended.append(rec)
        if ended:
            await self.save()
        for rec in ended:
            await self._emit_ended(rec, source)
        return [r.session for r in ended]

    def on_session_watcher(self, session_id: str, kind: str, info: Mapping[str, Any]) -> None:
        """SessionsService listener: idle time and watcher liveness become away signals."""
        at = self.mono()
        if kind != "idle":
            self.relock.watcher_changed(session_id, kind, at)
            return
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
        self.spawn(self.away("idle", f"idle for {int(seconds)} s", [session_id], at))

    # -- the lock itself -------------------------------------------------------------------------

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
        attempt = Attempt()
        if not (info is not None and info.locked_hint):
            self.hints.unlocked(sid)
        requested_at = self.mono()
        attempt.signal_to_request = requested_at - signal_at
        try:
            await self.logind.lock_session(sid)
        except LogindError as exc:
            attempt.error = str(exc)
            _log.warning("lock_session_failed", session=sid, error=str(exc))
        deadline = requested_at + self.settings.verify_seconds
        verified_by = await self.verifier.verify(sid, deadline, attempt) if attempt.error is None else None
        if verified_by is None:
            verified_by = await self.verifier.fallback(sid, attempt)
        if verified_by is not None:
            attempt.verified_by = verified_by
            end = self.hints.seen_at(sid) if verified_by == "locked_hint" else None
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
            await asyncio.gather(self.save(), report)
        else:
            await report
        if ok and verified_by == "x11_grab":
            self.spawn(self.relock.watch_grab(sid, rec))
        if not ok and self.settings.terminate_on_failure:
            await self._terminate(sid, rec)
        return ok

    async def _terminate(self, sid: str, rec: AwayRecord) -> None:
        error = None
        try:
            await self.logind.terminate_session(sid)
        except LogindError as exc:
            error = str(exc)
        await self.events.emit(reports.terminated(sid, rec, error))

    async def _emit_lock_result(
        self, sid: str, rec: AwayRecord, a: Attempt, *, source: str, reason: str, resumed: bool
    ) -> None:
        data = a.data(sid, source=source, reason=reason, resumed=resumed)
        self.last_attempt_timings = data["timings"]["signal_to_request_ms"]
        if a.verified_by:
            await self.events.emit(Draft("screen.locked", "info", data, user=rec.user))
            if a.observed_at is not None:
                self.last_verified_emit = (a.observed_at, self.mono())
        else:
            await self.events.emit(Draft("screen.lock_failed", "high", data, user=rec.user))

    # For the benchmark and status: the last verified lock's (LockedHint observed, committed) times.
    last_verified_emit: tuple[float, float] | None = None
    last_attempt_timings: float | None = None

    # -- what logind tells us ----------------------------------------------------------------------

    def _on_logind(self, sig: SessionSignal) -> None:
        if sig.kind == "changed":
            self.known.apply(sig)
            if "LockedHint" in sig.changed:
                self.relock.locked_changed(sig.session_id, bool(sig.changed["LockedHint"]), sig.at)
        elif sig.kind == "new":
            self.spawn(self.known.add(sig.path))
        elif sig.kind == "removed":
            self.known.apply(sig)
            self.session_gone(sig.session_id)
        elif sig.kind == "unlock" and sig.session_id in self.watcher_missing:
            # With a watcher the locker answers Unlock and we see LockedHint or the grab go; without one an
            # unlock request is not waited out: it is answered with a lock.
            self.relock.unlock_seen(sig.session_id, "unlock_signal")
        else:
            _log.debug("logind_session_signal", kind=sig.kind, session=sig.session_id)

    def session_gone(self, sid: str) -> None:
        self.hints.forget(sid)
        if sid in self.watcher_missing:
            self.watcher_missing.discard(sid)
            self.spawn(self.save())
        rec = self.records.pop(sid, None)
        if rec is not None:
            self.relock.cancel(sid)
            self.spawn(self._ended_gone(rec))

    async def _ended_gone(self, rec: AwayRecord) -> None:
        await self.save()
        await self._emit_ended(rec, "session_ended")

    def resume(self, sid: str, rec: AwayRecord) -> None:
        """Lock a persisted away session again (its away.started was reported before)."""
        gate = asyncio.Event()
        gate.set()
        rec.phase = "locking"
        coro = self._lock(sid, rec, self.mono(), gate, source=rec.source, reason=rec.reason, resumed=True)
        self._track(sid, coro)

    # -- plumbing --------------------------------------------------------------------------------

    def in_flight(self, sid: str) -> bool:
        return sid in self._inflight

    async def end(self, sid: str, rec: AwayRecord, source: str) -> None:
        if self.records.get(sid) is rec:
            del self.records[sid]
            self._present_since[sid] = self.mono()
            await self.save()
            await self._emit_ended(rec, source)

    async def _emit_ended(self, rec: AwayRecord, source: str) -> None:
        await self.events.emit(reports.away_ended(rec, source, self.wall()))

    async def save(self) -> None:
        # Snapshots are taken in order under the lock, so the file always ends with the latest state.
        async with self._save_lock:
            snapshot = {sid: replace(rec) for sid, rec in self.records.items()}
            await asyncio.to_thread(self.store.save, snapshot, frozenset(self.watcher_missing))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("lock_task_failed", error=repr(task.exception()))

    def status(self) -> dict[str, Any]:
        return {
            "logind": "connected" if self.logind.connected else "unavailable",
            "bus": self.logind.address,
            "away": [r.summary() for r in self.records.values()],
            "sessions": [s.summary() for s in self.graphical_sessions()],
            "counters": dict(self.counters),
            "watcher_missing": sorted(self.watcher_missing),
        }
