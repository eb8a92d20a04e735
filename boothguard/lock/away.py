"""The away state machine: away signal → LockSession → verified or not (proof and fallbacks: `verify.py`) →
escalation; unlock or `back` → present. One record per away session, persisted.

Per session: present → away (locking) → locked | lock_failed → present (unlock, or back), with an optional
re-lock when the operator unlocks while the away state is meant to hold, and always a re-lock when the
session's watcher is missing (nobody would see what the unlocked session does).

An unlock is seen as LockedHint turning false, logind's Unlock signal (only acted on while the watcher is
missing: otherwise the locker answers it), or, for a lock proven by the X grab alone, the grab going away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from boothguard import log
from boothguard.agent.plugin import EventEmitter, SessionsService
from boothguard.events import Draft, format_time
from boothguard.lock import reports
from boothguard.lock.logind import Logind, LogindError, SessionInfo, SessionSignal
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
        self.known = SessionCache(
            logind,
            CacheListener(
                locked_hint=self._locked_changed,
                first_seen_locked=lambda sid: self.hints.event(sid).set(),
                gone=self._session_gone,
                connected=lambda: self._spawn(self._restore()),
            ),
            refresh_seconds=lambda: self.settings.refresh_seconds,
            monotonic=monotonic,
        )
        self.records: dict[str, AwayRecord] = {}
        self.hints = LockedHints()
        self.verifier = Verifier(
            settings=settings,
            logind=logind,
            hints=self.hints,
            session=self.session,
            sessions=sessions,
            on_locked=lambda sid, at: self._locked_changed(sid, True, at),
            monotonic=monotonic,
            xprobe=xprobe,
        )
        # Sessions whose watcher went missing and has not come back: an unlock there is answered with a lock.
        self.watcher_missing: set[str] = set()
        self._present_since: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self._relock: dict[str, asyncio.TimerHandle] = {}
        self._late: set[str] = set()  # sessions whose late LockedHint is being looked at
        self._tasks: set[asyncio.Task[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._save_lock = asyncio.Lock()
        self.counters = {"locks_verified": 0, "locks_failed": 0, "signals": 0, "relocked_watcher_missing": 0}
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
        self._stopping = self.known.stopping = True
        for handle in self._relock.values():
            handle.cancel()
        tasks = [t for t in (self._supervisor, *self._tasks, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._save()  # a save cancelled above must not lose the last state
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
        elif kind in ("watcher_back", "registered"):
            if session_id in self.watcher_missing:
                self.watcher_missing.discard(session_id)
                self._spawn(self._save())
        elif kind == "watcher_missing" and self.settings.lock_on_watcher_missing:
            if session_id not in self.watcher_missing:
                self.watcher_missing.add(session_id)
                self._spawn(self._save())  # kept across an agent restart: nobody else would tell it again
            known = self.cache.get(session_id)
            if known is not None and not (known.graphical and known.active):
                return
            if session_id in self.records and self.records[session_id].phase == "locked":
                return
            self._spawn(self.away("watcher_missing", "session watcher missing", [session_id], at))

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
            await asyncio.gather(self._save(), report)
        else:
            await report
        if ok and verified_by == "x11_grab":
            self._spawn(self._watch_grab(sid, rec))
        if not ok and self.settings.terminate_on_failure:
            await self._terminate(sid, rec)
        return ok

    async def _watch_grab(self, sid: str, rec: AwayRecord) -> None:
        """A lock proven by the X grab only: the grab going away is the unlock (i3lock exits on unlock)."""
        while self.records.get(sid) is rec and rec.phase == "locked" and not self._stopping:
            await asyncio.sleep(self.settings.x11_poll_seconds)
            if self.records.get(sid) is not rec or rec.phase != "locked":
                return
            state = await self.verifier.x11_state(sid)
            if state is not None and not state.grabbed:
                self._unlock_seen(sid, "x11_grab")
                return

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
                self._locked_changed(sig.session_id, bool(sig.changed["LockedHint"]), sig.at)
        elif sig.kind == "new":
            self._spawn(self.known.add(sig.path))
        elif sig.kind == "removed":
            self.known.apply(sig)
            self._session_gone(sig.session_id)
        elif sig.kind == "unlock" and sig.session_id in self.watcher_missing:
            # With a watcher the locker answers Unlock and we see LockedHint or the grab go; without one an
            # unlock request is not waited out: it is answered with a lock.
            self._unlock_seen(sig.session_id, "unlock_signal")
        else:
            _log.debug("logind_session_signal", kind=sig.kind, session=sig.session_id)

    def _locked_changed(self, sid: str, locked: bool, at: float) -> None:
        rec = self.records.get(sid)
        if locked:
            self.hints.locked(sid, at)
            if rec is None or rec.phase not in ("lock_failed", "unlocked"):
                return
            if sid not in self._inflight and sid not in self._late:
                self._late.add(sid)
                self._spawn(self._late_lock(sid, rec))
            return
        self.hints.unlocked(sid)
        self._unlock_seen(sid, "locked_hint")

    def _unlock_seen(self, sid: str, via: str) -> None:
        rec = self.records.get(sid)
        if rec is None or rec.phase != "locked":
            return
        rec.phase = "unlocked"  # at once: two sources of the same unlock (hint and grab) are handled once
        self._spawn(self._unlocked(sid, rec, via))

    async def _late_lock(self, sid: str, rec: AwayRecord) -> None:
        """LockedHint came after the attempt gave up: a lock if it is a proof (the same rules as in time)."""
        try:
            attempt = Attempt(method="late")
            proof = await self.verifier.proof_now(sid, attempt)
            if proof is None:
                _log.warning("late_lock_not_proven", session=sid, evidence=attempt.evidence)
                return
            if self.records.get(sid) is not rec or rec.phase not in ("lock_failed", "unlocked"):
                return
            if sid in self._inflight:
                return
            rec.phase, rec.method = "locked", "late"
            self._cancel_relock(sid)
            await self._save()
            data = {
                "session": sid,
                "source": rec.source,
                "method": "late",
                "result": "verified",
                "verified_by": proof,
                "evidence": attempt.evidence,
            }
            await self.events.emit(Draft("screen.locked", "info", data, user=rec.user))
            if proof == "x11_grab":
                self._spawn(self._watch_grab(sid, rec))
        finally:
            self._late.discard(sid)

    async def _unlocked(self, sid: str, rec: AwayRecord, via: str) -> None:
        relock = self.settings.relock_after_seconds
        missing = sid in self.watcher_missing and self.settings.lock_on_watcher_missing
        data = {"session": sid, "away_source": rec.source, "via": via, "watcher_missing": missing}
        await self.events.emit(Draft("screen.unlocked", "medium" if missing else "info", data, user=rec.user))
        if missing:
            # Unlocked with nobody watching: locked again until a watcher is back for the session.
            self.counters["relocked_watcher_missing"] += 1
            _log.warning("relock_watcher_missing", session=sid, via=via)
            self._cancel_relock(sid)
            await self._save()
            if sid not in self._inflight:
                self._spawn(
                    self.away("watcher_missing", "unlocked while the session watcher is missing", [sid])
                )
            return
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

    def _cancel_relock(self, sid: str) -> None:
        handle = self._relock.pop(sid, None)
        if handle is not None:
            handle.cancel()

    def _session_gone(self, sid: str) -> None:
        self.hints.forget(sid)
        if sid in self.watcher_missing:
            self.watcher_missing.discard(sid)
            self._spawn(self._save())
        rec = self.records.pop(sid, None)
        if rec is not None:
            self._cancel_relock(sid)
            self._spawn(self._ended_gone(rec))

    async def _ended_gone(self, rec: AwayRecord) -> None:
        await self._save()
        await self._emit_ended(rec, "session_ended")

    async def _restore(self) -> None:
        """After a (re)connect: persisted away sessions stay away, and are locked again if they are not."""
        for sid in [s for s in self.watcher_missing if s not in self.cache]:
            self._session_gone(sid)  # ended while we were away
        for sid, rec in list(self.records.items()):
            info = self.cache.get(sid)
            if info is None:
                self._session_gone(sid)
            elif info.locked_hint and rec.phase == "locked":
                continue
            elif sid not in self._inflight:
                # Unlocked, or a hint not judged yet (maybe the operator's own SetLockedHint): try again.
                gate = asyncio.Event()
                gate.set()
                rec.phase = "locking"
                self._track(
                    sid,
                    self._lock(
                        sid, rec, self.mono(), gate, source=rec.source, reason=rec.reason, resumed=True
                    ),
                )

    # -- plumbing --------------------------------------------------------------------------------

    async def _emit_ended(self, rec: AwayRecord, source: str) -> None:
        await self.events.emit(reports.away_ended(rec, source, self.wall()))

    async def _save(self) -> None:
        # Snapshots are taken in order under the lock, so the file always ends with the latest state.
        async with self._save_lock:
            snapshot = {sid: replace(rec) for sid, rec in self.records.items()}
            await asyncio.to_thread(self.store.save, snapshot, frozenset(self.watcher_missing))

    def _spawn(self, coro: Any) -> None:
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
            "away": [
                {
                    "session": r.session,
                    "user": r.user,
                    "source": r.source,
                    "reason": r.reason,
                    "since": format_time(r.since),
                    "phase": r.phase,
                    "method": r.method,
                }
                for r in self.records.values()
            ],
            "sessions": [s.summary() for s in self.graphical_sessions()],
            "counters": dict(self.counters),
            "watcher_missing": sorted(self.watcher_missing),
        }
