"""The notify plugin in an in-test agent (real ControlServer, real sessions plugin, a list as the spool)
with the real watcher (`boothguard session`) as a subprocess showing notifications on dbusmock."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from boothguard.agent.control import ControlServer
from boothguard.agent.plugin import AgentContext
from boothguard.agent.settings import AgentSection
from boothguard.config import AgentConfig
from boothguard.events import Draft
from boothguard.lock.settings import LockSection
from boothguard.notify.grouping import Grouper, Policy
from boothguard.notify.plugin import NotifyPlugin
from boothguard.session.agent_side import SessionsPlugin
from boothguard.session.settings import ClipboardSection
from tests.helpers.emitter import ListEmitter
from tests.notify.bus import SessionBus
from tests.session.harness import Proc

SID = "c7"
FAST = {
    kind: Policy(quiet=0.3, max_delay=3.0, cooldown=5.0)
    for kind in ("usb_blocked", "clipboard_cleared", "capture_stopped")
} | {kind: Policy(0.0, 0.0, 0.0) for kind in ("remote_lock", "idle_lock_warning")}


async def until(check: Callable[[], bool], timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Rig:
    def __init__(self, tmp: Path, bus: SessionBus | None, locale: str) -> None:
        self.config = AgentConfig(
            agent=AgentSection(state_dir=tmp / "state", runtime_dir=tmp / "run"),
            clipboard=ClipboardSection(watcher_heartbeat_seconds=0.5, watcher_timeout_seconds=5),
            lock=LockSection(idle_seconds=300),
        )
        self.config_file = tmp / "agent.toml"
        self.config_file.write_text(
            f'[agent]\nruntime_dir = "{tmp / "run"}"\nstate_dir = "{tmp / "state"}"\n'
        )
        self.config_file.chmod(0o644)
        self.bus = bus
        self.locale = locale
        self.server = ControlServer(self.config.socket_path, "boothguard")
        self.spool = ListEmitter()
        self.ctx = AgentContext(self.config, self.spool, self.server, time.time, time.monotonic)
        self.notify = NotifyPlugin(self.config, Grouper(FAST))
        self.sessions = SessionsPlugin(self.config)
        self.watcher: Proc | None = None

    async def start(self, watcher: bool = True) -> None:
        await self.notify.start(self.ctx)  # first, as build_plugins orders it
        await self.sessions.start(self.ctx)
        await self.server.start()
        if watcher:
            env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "LC_ALL")}
            env |= {"XDG_SESSION_ID": SID, "LANG": self.locale, "PYTHONPATH": str(Path.cwd())}
            env.pop("DBUS_SESSION_BUS_ADDRESS", None)
            env.pop("XDG_RUNTIME_DIR", None)
            if self.bus is not None:
                env["DBUS_SESSION_BUS_ADDRESS"] = self.bus.address
            argv = [sys.executable, "-m", "boothguard", "session", "--config", str(self.config_file)]
            self.watcher = Proc(argv, env).start()
            await until(lambda: self.sessions.watcher_alive(SID), 30, "watcher registered")

    async def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        await self.sessions.stop()
        await self.notify.stop()
        await self.server.stop()

    def notified(self) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.spool.of("operator.notified")]

    async def wait_notified(self, n: int, timeout: float = 15) -> list[dict[str, Any]]:
        await until(lambda: len(self.notified()) >= n, timeout, f"{n} operator.notified")
        return self.notified()


def run(rig: Rig, body: Callable[[Rig], Awaitable[None]], watcher: bool = True) -> None:
    async def main() -> None:
        await rig.start(watcher)
        try:
            await body(rig)
        finally:
            await rig.stop()

    asyncio.run(main())


def blocked(n: int, origin: str = "inserted") -> Draft:
    data = {
        "port": f"1-{n}",
        "vendor_id": "0781",
        "product_id": "5567",
        "product": f"Stick {n}",
        "rule": "block-mass-storage",
        "outcome": "blocked",
        "origin": origin,
        "mode": "enforce",
    }
    return Draft("usb.device.blocked", "medium", data)


EXPECTED = {
    "ja": {
        "burst": "USBデバイス20台をブロックしました",
        "clipboard": "コピーした内容を消去しました",
        "capture": "画面キャプチャを停止しました",
        "remote": "セキュリティ担当者が画面をロックしました",
        "idle": "20秒後に画面をロックします",
    },
    "en": {
        "burst": "20 USB devices blocked",
        "clipboard": "Copy removed",
        "capture": "Screen capture stopped",
        "remote": "Screen locked by security",
        "idle": "Locking in 20 seconds",
    },
}


@pytest.mark.parametrize(("lang", "locale"), [("ja", "ja_JP.UTF-8"), ("en", "en_US.UTF-8")])
def test_events_become_notifications(
    tmp_path: Path, notifications: SessionBus, lang: str, locale: str
) -> None:
    want = EXPECTED[lang]

    async def body(rig: Rig) -> None:
        await rig.ctx.events.emit(blocked(0, origin="present"))  # at start-up: nobody to tell
        for n in range(1, 21):  # a burst of 20 blocks
            await rig.ctx.events.emit(blocked(n))
        notified = await rig.wait_notified(1)
        assert notified == [
            {
                "kind": "usb_blocked",
                "count": 20,
                "session": SID,
                "language": lang,
                "shown": True,
                "reason": None,
            }
        ]
        assert [c["summary"] for c in notifications.notify_calls()] == [want["burst"]]

        await rig.ctx.events.emit(
            Draft("clipboard.cleared", "medium", {"ok": True, "session_id": SID, "pii": {"credit_card": 1}})
        )
        kill = {"action": "kill", "ok": True, "app": "scrot", "pid": 4242, "session_id": SID}
        await rig.ctx.events.emit(Draft("screenshot.blocked", "medium", kill))
        await rig.ctx.events.emit(
            Draft("away.started", "info", {"session": SID, "source": "collector", "reason": "incident"})
        )
        await rig.ctx.events.emit(Draft("away.started", "info", {"session": SID, "source": "cli"}))
        rig.notify.on_session(SID, "idle", {"seconds": 100.0})  # far from the 300 s lock
        rig.notify.on_session(SID, "idle", {"seconds": 280.0})  # 20 s left: warn once
        rig.notify.on_session(SID, "idle", {"seconds": 285.0})
        notified = await rig.wait_notified(5)
        await asyncio.sleep(0.5)  # nothing else comes
        assert len(rig.notified()) == 5
        kinds = sorted(n["kind"] for n in notified[1:])
        assert kinds == ["capture_stopped", "clipboard_cleared", "idle_lock_warning", "remote_lock"]
        assert all(n["shown"] and n["language"] == lang and n["count"] == 1 for n in notified[1:])
        summaries = {c["summary"] for c in notifications.notify_calls()}
        assert summaries == {want[k] for k in want}
        # No device names, texts or apps in the events: only what the operator was told, by kind.
        assert all(set(n) == {"kind", "count", "session", "language", "shown", "reason"} for n in notified)
        assert rig.notify.status()["shown"] == 5

    run(Rig(tmp_path, notifications, locale), body)


def test_no_notification_service(tmp_path: Path, bare_bus: SessionBus) -> None:
    async def body(rig: Rig) -> None:
        await rig.ctx.events.emit(blocked(1))
        (first,) = await rig.wait_notified(1)
        assert (first["shown"], first["reason"], first["language"]) == (False, "no_service", "ja")
        # Nothing broke: the watcher is alive and the next notification is still tried.
        assert rig.sessions.watcher_alive(SID)
        await rig.ctx.events.emit(Draft("clipboard.cleared", "medium", {"ok": True, "session_id": SID}))
        second = (await rig.wait_notified(2))[1]
        assert (second["kind"], second["shown"]) == ("clipboard_cleared", False)
        assert [e.type for e in rig.spool.events].count("usb.device.blocked") == 1

    run(Rig(tmp_path, bare_bus, "ja_JP.UTF-8"), body)


def test_no_watcher(tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        await rig.ctx.events.emit(blocked(1))
        (only,) = await rig.wait_notified(1)
        assert (only["shown"], only["reason"], only["session"]) == (False, "no_watcher", None)

    run(Rig(tmp_path, None, "en_US.UTF-8"), body, watcher=False)
