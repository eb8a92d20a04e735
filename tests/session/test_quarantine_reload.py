"""A reload that turns `screenshot.policy = "quarantine"` on opens the quarantine door, and one that turns it
off closes it (the booth found watchers told "quarantine" knocking on a door that was never opened)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from boothguard.agent.control import ControlServer
from boothguard.agent.plugin import AgentContext
from boothguard.agent.settings import AgentSection
from boothguard.config import AgentConfig
from boothguard.session.agent_side import SessionsPlugin
from boothguard.session.quarantine_door import door_path
from boothguard.session.settings import ScreenshotSection
from tests.helpers.emitter import ListEmitter


def _config(tmp: Path, policy: str, max_bytes: int = 1 << 20) -> AgentConfig:
    return AgentConfig(
        agent=AgentSection(state_dir=tmp / "state", runtime_dir=tmp / "run"),
        screenshot=ScreenshotSection(policy=policy, quarantine_max_bytes=max_bytes),  # type: ignore[arg-type]
    )


def _knocks(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


async def _until(pred: object, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def test_reload_opens_and_closes_the_quarantine_door(tmp_path: Path) -> None:
    async def main() -> None:
        config = _config(tmp_path, "report")
        server = ControlServer(config.socket_path, "boothguard")
        ctx = AgentContext(config, ListEmitter(), server, time.time, time.monotonic)
        plugin = SessionsPlugin(config)
        door = door_path(config.socket_path)
        await server.start()
        await plugin.start(ctx)
        try:
            assert not door.exists()
            plugin.reload(_config(tmp_path, "quarantine", 4096))
            assert await _until(lambda: _knocks(door)), "reload to quarantine did not open the door"
            plugin.reload(_config(tmp_path, "quarantine", 8192))  # still open, the new cap applies
            assert await _until(
                lambda: plugin._quarantine.door is not None and plugin._quarantine.door.max_bytes == 8192
            )
            assert _knocks(door)
            plugin.reload(_config(tmp_path, "delete"))
            assert await _until(lambda: not door.exists()), "reload away from quarantine left the door open"
        finally:
            await plugin.stop()
            await server.stop()

    asyncio.run(main())
