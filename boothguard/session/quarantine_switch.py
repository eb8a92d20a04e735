"""The quarantine door follows the screenshot policy: it exists only while the policy is `quarantine`. Start
and every reload call `sync`, which opens it, closes it, or hands it the new directory and size limit (the
booth found a reload to quarantine leaving watchers knocking on a door that was never opened). Counts what
came through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from boothguard.config import AgentConfig
from boothguard.session.quarantine_door import QuarantineDoor, door_path


class QuarantineSwitch:
    def __init__(
        self,
        *,
        config: Callable[[], AgentConfig],
        bound_watcher: Callable[[str], tuple[int, int] | None],
        wall_clock: Callable[[], float],
    ) -> None:
        self._config = config  # read at each sync: a reload replaces the config
        self._bound_watcher = bound_watcher
        self._wall_clock = wall_clock
        self.door: QuarantineDoor | None = None
        self._lock = asyncio.Lock()
        self.quarantined = 0

    @property
    def quarantine_dir(self) -> Path:
        config = self._config()
        configured = config.screenshot.quarantine_dir
        return Path(configured) if configured else config.agent.state_dir / "quarantine"

    async def sync(self) -> None:
        async with self._lock:
            config = self._config()
            want = config.screenshot.policy == "quarantine"
            if want and self.door is None:
                door = QuarantineDoor(
                    door_path(config.socket_path),
                    self._bound_watcher,
                    qdir=self.quarantine_dir,
                    max_bytes=config.screenshot.quarantine_max_bytes,
                    wall_clock=self._wall_clock,
                    on_done=self._done,
                )
                await door.start()
                self.door = door
            elif not want and self.door is not None:
                door, self.door = self.door, None
                await door.stop()
            elif self.door is not None:
                self.door.qdir = self.quarantine_dir
                self.door.max_bytes = config.screenshot.quarantine_max_bytes

    async def stop(self) -> None:
        if self.door is not None:
            await self.door.stop()

    def _done(self, session_id: str, ok: bool, info: dict[str, Any]) -> None:
        if ok:
            self.quarantined += 1
