"""What the away controller's parts share: per-session state, persisting it, `away.ended`, task plumbing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from boothguard import log
from boothguard.agent.plugin import EventEmitter, SessionsService
from boothguard.events import Draft
from boothguard.lock.logind import Logind, SessionInfo
from boothguard.lock.settings import LockSection
from boothguard.lock.state import AwayRecord, StateStore

_log = log.get("lock.away")
MAX_REASON = 200


def clean_reason(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return "".join(ch for ch in text if ch.isprintable())[:MAX_REASON]


class AwayBase:
    """The state the parts share; `boothguard.lock.away.AwayController` sets it up and composes the parts."""

    settings: LockSection
    logind: Logind
    events: EventEmitter
    store: StateStore
    _sessions: Callable[[], SessionsService | None]
    mono: Callable[[], float]
    wall: Callable[[], float]
    cache: dict[str, SessionInfo]
    records: dict[str, AwayRecord]
    _locked: dict[str, asyncio.Event]
    _observed_at: dict[str, float]
    _present_since: dict[str, float]
    _inflight: dict[str, asyncio.Task[bool]]
    _relock: dict[str, asyncio.TimerHandle]
    _tasks: set[asyncio.Task[Any]]
    _save_lock: asyncio.Lock
    counters: dict[str, int]

    # Implemented by the parts (away_sources, away_state, away_lock); declared here for each other.

    async def away(
        self, source: str, reason: str, session_ids: list[str] | None = None, at: float | None = None
    ) -> dict[str, bool]:
        raise NotImplementedError

    async def refresh(self) -> None:
        raise NotImplementedError

    def _locked_changed(self, sid: str, locked: bool, at: float) -> None:
        raise NotImplementedError

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
        raise NotImplementedError

    async def _no_target(self, source: str, reason: str, signal_at: float) -> None:
        raise NotImplementedError

    # -- plumbing --------------------------------------------------------------------------------

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

    def _lock_event(self, sid: str) -> asyncio.Event:
        return self._locked.setdefault(sid, asyncio.Event())

    def _cancel_relock(self, sid: str) -> None:
        handle = self._relock.pop(sid, None)
        if handle is not None:
            handle.cancel()

    async def _emit_ended(self, rec: AwayRecord, source: str) -> None:
        data = {
            "session": rec.session,
            "source": source,
            "away_source": rec.source,
            "duration_s": round(max(0.0, self.wall() - rec.since), 3),
        }
        await self.events.emit(Draft("away.ended", "info", data, user=rec.user))

    async def _save(self) -> None:
        # Snapshots are taken in order under the lock, so the file always ends with the latest state.
        async with self._save_lock:
            snapshot = {sid: replace(rec) for sid, rec in self.records.items()}
            await asyncio.to_thread(self.store.save, snapshot)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("lock_task_failed", error=repr(task.exception()))
