"""The sessions plugin in an in-test agent: a real ControlServer on a temp socket, a list as the emitter."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from boothguard.agent.control import ControlServer
from boothguard.agent.plugin import AgentContext
from boothguard.agent.settings import AgentSection
from boothguard.config import AgentConfig
from boothguard.session.agent_side import SessionsPlugin
from boothguard.session.settings import ClipboardSection
from tests.helpers.emitter import ListEmitter


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.config = AgentConfig(
            agent=AgentSection(state_dir=tmp / "state", runtime_dir=tmp / "run"),
            clipboard=ClipboardSection(watcher_heartbeat_seconds=0.2, watcher_timeout_seconds=0.6),
        )
        self.server = ControlServer(self.config.socket_path, "boothguard")
        self.emitter = ListEmitter()
        self.ctx = AgentContext(self.config, self.emitter, self.server, time.time, time.monotonic)
        self.plugin = SessionsPlugin(self.config)
        self.notes: list[tuple[str, str, Mapping[str, Any]]] = []


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.n = 0
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        self.n += 1
        self.writer.write(json.dumps({"op": op, "id": self.n, **fields}).encode() + b"\n")
        await self.writer.drain()
        while True:
            msg = json.loads(await asyncio.wait_for(self.reader.readline(), 5))
            if "push" in msg:
                await self.pushes.put(msg)
            elif msg.get("id") == self.n:
                return msg


async def _client(h: Harness) -> Client:
    r, w = await asyncio.open_unix_connection(str(h.config.socket_path))
    return Client(r, w)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with_harness(tmp: Path, body: Any) -> None:
    h = Harness(tmp)
    await h.server.start()
    await h.plugin.start(h.ctx)
    h.plugin.add_listener(lambda sid, kind, info: h.notes.append((sid, kind, info)))
    try:
        await body(h)
    finally:
        await h.plugin.stop()
        await h.server.stop()


def test_register_heartbeat_event_and_service(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        c = await _client(h)
        reply = await c.call(
            "watcher.register", session_id="c1", display=":5", capabilities=["clipboard.x11"]
        )
        assert reply["ok"] is True
        assert len(bytes.fromhex(reply["fingerprint_key"])) == 32
        assert reply["clipboard"]["policy"] == "report"
        assert (h.config.agent.state_dir / "clipboard.key").stat().st_mode & 0o777 == 0o600
        assert h.plugin.watcher_alive("c1")
        assert not h.plugin.watcher_alive("c2")
        assert (await c.call("watcher.heartbeat", idle_seconds=12.5, screensaver_active=False))["ok"]
        assert h.plugin.idle_seconds("c1") == 12.5
        assert ("c1", "idle", {"seconds": 12.5}) in h.notes
        assert (
            await c.call(
                "watcher.event", type="clipboard.copy", severity="high", data={"pii": {"credit_card": 1}}
            )
        )["ok"]
        ev = h.emitter.of("clipboard.copy")[0]
        assert ev.data["session_id"] == "c1"
        assert ev.user == "root"
        status = h.plugin.status()["watchers"][0]
        assert status["alive"] is True
        assert status["events"] == 1
        assert (await c.call("watcher.goodbye", reason="display_closed"))["ok"]
        assert h.emitter.of("session.ended")[0].data["reason"] == "display_closed"
        c.writer.close()
        await asyncio.sleep(0.2)
        assert h.emitter.of("session.watcher_missing") == []

    run(_with_harness(tmp_path, body))


def test_push_request_is_answered_by_rid(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        c = await _client(h)
        await c.call("watcher.register", session_id="c1")

        async def watcher_side() -> None:
            msg = json.loads(await asyncio.wait_for(c.reader.readline(), 5))
            assert msg["push"] == "lock_fallback"
            assert msg["commands"] == [["true"]]
            c.writer.write(
                json.dumps(
                    {"op": "watcher.reply", "id": 99, "rid": msg["rid"], "ok": True, "method": "true"}
                ).encode()
                + b"\n"
            )
            await c.writer.drain()

        answer, _ = await asyncio.gather(
            h.plugin.request("c1", "lock_fallback", 3, commands=[["true"]]), watcher_side()
        )
        assert answer == {"ok": True, "method": "true"}
        # No answer: None after the timeout; unknown session: None at once.
        assert await h.plugin.request("c1", "screensaver_state", 0.2) is None
        assert await h.plugin.request("nope", "screensaver_state", 5) is None

    run(_with_harness(tmp_path, body))


def test_silent_watcher_goes_missing_then_back(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        c = await _client(h)
        await c.call("watcher.register", session_id="c9")
        for _ in range(40):
            if h.emitter.of("session.watcher_missing"):
                break
            await asyncio.sleep(0.1)
        missing = h.emitter.of("session.watcher_missing")
        assert [m.data["reason"] for m in missing] == ["heartbeat_timeout"]
        assert not h.plugin.watcher_alive("c9")
        assert ("c9", "watcher_missing", {"reason": "heartbeat_timeout", "user": "root"}) in h.notes
        await c.call("watcher.heartbeat", idle_seconds=1)
        assert h.plugin.watcher_alive("c9")
        assert any(kind == "watcher_back" for _, kind, _ in h.notes)
        c.writer.close()
        for _ in range(40):
            if len(h.emitter.of("session.watcher_missing")) == 2:
                break
            await asyncio.sleep(0.05)
        assert h.emitter.of("session.watcher_missing")[-1].data["reason"] == "disconnected"

    run(_with_harness(tmp_path, body))


def test_unregistered_and_bad_requests_are_refused(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        c = await _client(h)
        assert (await c.call("watcher.event", type="clipboard.copy"))["ok"] is False
        assert (await c.call("watcher.register", session_id="../etc"))["ok"] is False
        assert (await c.call("watcher.heartbeat"))["ok"] is False
        assert h.emitter.events == []

    run(_with_harness(tmp_path, body))


NOBODY_CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
def call(**m):
    f.write(json.dumps(m).encode() + b"\n"); f.flush(); return json.loads(f.readline())
out = [call(op="watcher.register", id=1, session_id="c7"),
       call(op="watcher.event", id=2, type="usb.device.allowed", severity="info", data={}),
       call(op="watcher.event", id=3, type="clipboard.copy", severity="info", data={"size": 1}),
       call(op="session.quarantine", id=4, path=sys.argv[2])]
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_unbound_non_root_watcher_is_refused() -> None:
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="bg-session-"))  # pytest's tmp is 0700: nobody could not connect
    base.chmod(0o755)
    victim = base / "root-owned.png"
    victim.write_bytes(b"x")

    async def body(h: Harness) -> None:
        proc = await asyncio.create_subprocess_exec(
            "/usr/bin/python3",
            "-c",
            NOBODY_CLIENT,
            str(h.config.socket_path),
            str(victim),
            stdout=subprocess.PIPE,
            preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)),
        )
        stdout, _ = await asyncio.wait_for(proc.communicate(), 20)
        reg, usb, clip, quarantine = json.loads(stdout)
        # no logind here: a non-root watcher cannot be bound to a session, so it is refused (fail closed)
        # and nothing else it asks is served; the bound case is in tests/redteam
        assert (reg["ok"], reg["code"]) == (False, 77)
        assert "logind" in reg["error"]
        assert usb["ok"] is False
        assert clip["ok"] is False
        assert quarantine["ok"] is False  # no such op: quarantine is by fd on its own socket (redteam)
        assert victim.exists()
        denied = h.emitter.of("session.register_denied")
        assert [(e.data["uid"], e.data["claimed_session"]) for e in denied] == [(65534, "c7")]
        assert h.emitter.of("clipboard.copy") == []

    try:
        run(_with_harness(base, body))
    finally:
        shutil.rmtree(base, ignore_errors=True)
