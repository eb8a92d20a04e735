"""logind's sessions as the agent last saw them, kept fresh: refreshed every `refresh_seconds`, updated by
logind's signals, and the bus reconnected with backoff when it or logind goes away (restarts)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from boothguard import log
from boothguard.lock.logind import Logind, LogindError, SessionInfo, SessionSignal, with_changes

_log = log.get("lock.sessions")
RECONNECT_MIN, RECONNECT_MAX = 1.0, 30.0


@dataclass(frozen=True)
class CacheListener:
    """What the away state machine is told; each is called from the event loop, never awaited."""

    locked_hint: Callable[[str, bool, float], None]  # session, LockedHint, when (monotonic)
    first_seen_locked: Callable[[str], None]
    gone: Callable[[str], None]
    connected: Callable[[], None]  # after each (re)connect and the refresh that follows it


class SessionCache:
    def __init__(
        self,
        logind: Logind,
        listener: CacheListener,
        *,
        refresh_seconds: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.logind = logind
        self.listener = listener
        self.refresh_seconds = refresh_seconds
        self.mono = monotonic
        self.sessions: dict[str, SessionInfo] = {}
        self.stopping = False

    def get(self, sid: str) -> SessionInfo | None:
        return self.sessions.get(sid)

    def graphical(self) -> list[SessionInfo]:
        return [s for s in self.sessions.values() if s.graphical]

    async def connect(self) -> None:
        await self.logind.connect()
        await self.refresh()
        self.listener.connected()

    async def refresh(self) -> None:
        fresh = {s.id: s for s in await self.logind.list_sessions()}
        old = self.sessions
        self.sessions = fresh
        for sid, info in fresh.items():
            before = old.get(sid)
            if before is not None and before.locked_hint != info.locked_hint:
                self.listener.locked_hint(sid, info.locked_hint, self.mono())
            elif before is None and info.locked_hint:
                self.listener.first_seen_locked(sid)
        for sid in set(old) - set(fresh):
            self.listener.gone(sid)

    async def supervise(self) -> None:
        """Keep the cache fresh and the bus connected until `stopping`."""
        delay = RECONNECT_MIN
        while not self.stopping:
            if self.logind.connected:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.logind.lost.wait(), self.refresh_seconds())
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
                await self.connect()
                _log.info("logind_connected", address=self.logind.address)
            except LogindError as exc:
                _log.debug("logind_connect_failed", error=str(exc))
                delay = min(delay * 2, RECONNECT_MAX)

    def apply(self, sig: SessionSignal) -> None:
        """A changed or removed session's signal, applied to the cache (a new one needs `add`)."""
        if sig.kind == "changed":
            info = self.sessions.get(sig.session_id)
            if info is not None:
                self.sessions[sig.session_id] = with_changes(info, sig.changed)
        elif sig.kind == "removed":
            self.sessions.pop(sig.session_id, None)

    async def add(self, path: str) -> None:
        with contextlib.suppress(LogindError):
            info = await self.logind.session_at(path)
            self.sessions[info.id] = info
