"""VPN watcher: interfaces whose names match configured patterns; up when any of them is up.

Polls `psutil.net_if_stats()` (passed in, so tests can drive it); only transitions are reported, and a
booth that never had the VPN up is "unknown", not "down" (booting before the VPN connects is normal).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from boothguard import log

VpnState = Literal["unknown", "up", "down"]
StatsFn = Callable[[], Mapping[str, Any]]
ChangeFn = Callable[[bool, list[str]], Awaitable[None]]
_log = log.get("net.vpn")


def _psutil_stats() -> Mapping[str, Any]:
    import psutil

    return psutil.net_if_stats()


def matching_up(stats: Mapping[str, Any], patterns: Sequence[str]) -> list[str]:
    return sorted(
        name
        for name, st in stats.items()
        if any(fnmatch.fnmatchcase(name, p) for p in patterns) and bool(getattr(st, "isup", False))
    )


class VpnWatcher:
    def __init__(
        self,
        patterns: Sequence[str],
        poll_seconds: float,
        on_change: ChangeFn,
        stats: StatsFn = _psutil_stats,
    ) -> None:
        self.patterns = list(patterns)
        self.poll_seconds = poll_seconds
        self.on_change = on_change
        self.stats = stats
        self.state: VpnState = "unknown"
        self.interfaces: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="vpn-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def poll_once(self) -> None:
        try:
            up = matching_up(self.stats(), self.patterns)
        except OSError as exc:
            _log.warning("vpn_poll_failed", error=str(exc))
            return
        was = self.state
        new: VpnState = "up" if up else ("unknown" if was == "unknown" else "down")
        previous = self.interfaces
        self.state, self.interfaces = new, up
        if new == was:
            return
        _log.info("vpn_state", state=new, interfaces=up or previous)
        await self.on_change(new == "up", up or previous)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # a failing callback must not end the watch
                _log.exception("vpn_watch_failed")
            await asyncio.sleep(self.poll_seconds)

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "interfaces": self.interfaces, "patterns": self.patterns}
