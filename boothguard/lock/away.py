"""The away state machine: away signal → LockSession → verified (LockedHint / screensaver) or fallbacks →
escalation; unlock or `back` → present. One record per away session, persisted.

Per session: present → away (locking) → locked | lock_failed → present (unlock, or back), with an optional
re-lock when the operator unlocks while the away state is meant to hold.

This module composes the parts and runs them: signals in (`away_sources`), the logind-driven state machine
(`away_state`), one lock attempt with verification and escalation (`away_lock`), shared state (`away_base`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from boothguard import log
from boothguard.agent.plugin import EventEmitter, SessionsService
from boothguard.events import format_time
from boothguard.lock.away_base import MAX_REASON, clean_reason
from boothguard.lock.away_lock import LockAttempts
from boothguard.lock.away_sources import AwaySources
from boothguard.lock.away_state import AwayStateMachine
from boothguard.lock.logind import Logind, LogindError, SessionInfo
from boothguard.lock.settings import LockSection
from boothguard.lock.state import AwayRecord, StateStore

__all__ = ["MAX_REASON", "AwayController", "clean_reason"]

_log = log.get("lock.away")
RECONNECT_MIN, RECONNECT_MAX = 1.0, 30.0


class AwayController(AwaySources, AwayStateMachine, LockAttempts):
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
    ) -> None:
        self.settings = settings
        self.logind = logind
        self.events = events
        self.store = store
        self._sessions = sessions
        self.mono = monotonic
        self.wall = wall_clock
        self.cache: dict[str, SessionInfo] = {}
        self.records: dict[str, AwayRecord] = {}
        self._locked: dict[str, asyncio.Event] = {}
        self._observed_at: dict[str, float] = {}
        self._present_since: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self._relock: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._save_lock = asyncio.Lock()
        self.counters = {"locks_verified": 0, "locks_failed": 0, "signals": 0}
        logind.add_listener(self._on_logind)

    async def start(self) -> None:
        self.records = self.store.load()
        with contextlib.suppress(LogindError):
            await self._connect()
        if not self.logind.connected:
            _log.warning("logind_unavailable", address=self.logind.address)
        self._supervisor = asyncio.create_task(self._supervise(), name="lock-supervisor")

    async def stop(self) -> None:
        self._stopping = True
        for handle in self._relock.values():
            handle.cancel()
        tasks = [t for t in (self._supervisor, *self._tasks, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.logind.close()

    async def _connect(self) -> None:
        await self.logind.connect()
        await self.refresh()
        self._spawn(self._restore())

    async def _supervise(self) -> None:
        """Keep the session cache fresh and the bus connected (logind restarts, bus restarts)."""
        delay = RECONNECT_MIN
        while not self._stopping:
            if self.logind.connected:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.logind.lost.wait(), self.settings.refresh_seconds)
                if self.logind.connected:
                    try:
                        await self.refresh()
                    except LogindError as exc:
                        _log.warning("logind_refresh_failed", error=str(exc))
                        self.logind.lost.set()  # reconnect, which checks that logind is there
                    continue
                delay = RECONNECT_MIN
                await self.logind.close()
            await asyncio.sleep(delay)
            try:
                await self._connect()
                _log.info("logind_connected", address=self.logind.address)
            except LogindError as exc:
                _log.debug("logind_connect_failed", error=str(exc))
                delay = min(delay * 2, RECONNECT_MAX)

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
        }
