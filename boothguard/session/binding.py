"""Binding a watcher to its logind session: the kernel's word on the peer (SO_PEERCRED) against logind's
on which session that pid is in and whose it is. The watcher's own claim is only compared, never trusted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from boothguard import log
from boothguard.agent.control import Peer
from boothguard.lock.logind import Logind, LogindError, system_bus_address

# How long the same refused registration (uid, claimed session, reason) is not reported again.
DENIED_REPORT_SECONDS = 60.0
_log = log.get("sessions")


class SessionBinder:
    def __init__(self, bus_address: Callable[[], str], clock: Callable[[], float]) -> None:
        self._bus_address = bus_address  # read at each (re)connect: a reload may change it
        self._clock = clock
        self._logind: Logind | None = None
        self._reported: dict[tuple[int, str, str], float] = {}

    async def why_not(self, peer: Peer, sid: str) -> str | None:
        """None when logind puts the peer's pid in session `sid` owned by the peer's uid; else why not."""
        try:
            if self._logind is None or not self._logind.connected:
                self._logind = Logind(system_bus_address(self._bus_address()), self._clock)
                await self._logind.connect()
            info = await self._logind.session_by_pid(peer.pid)
        except LogindError as exc:
            _log.warning("watcher_bind_failed", uid=peer.uid, pid=peer.pid, error=str(exc))
            return "logind is not reachable: cannot bind the watcher to a session"
        if info is None:
            return f"pid {peer.pid} is in no logind session"
        if info.id != sid:
            return f"pid {peer.pid} is in logind session {info.id}, not {sid}"
        if info.uid != peer.uid:
            return f"logind session {sid} belongs to uid {info.uid}"
        return None

    def report_due(self, peer: Peer, sid: str, reason: str) -> bool:
        """A watcher retrying the same refused registration is reported once a minute, not per attempt."""
        now = self._clock()
        key = (peer.uid, sid, reason)
        last = self._reported.get(key)
        if last is not None and now - last < DENIED_REPORT_SECONDS:
            return False
        if len(self._reported) > 1024:
            self._reported.clear()
        self._reported[key] = now
        return True

    async def close(self) -> None:
        if self._logind is not None:
            with contextlib.suppress(TimeoutError):  # a stuck bus must not hold up the agent's stop
                await asyncio.wait_for(self._logind.close(), 2.0)
