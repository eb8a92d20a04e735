"""Fixtures: a private system bus with dbusmock's logind, and an in-process agent harness built from the
real ControlServer, the real sessions plugin and the lock plugin, with a list as the event sink."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from boothguard.agent.control import ControlServer
from boothguard.agent.plugin import AgentContext
from boothguard.config import AgentConfig
from boothguard.events import Draft
from boothguard.lock.plugin import LockPlugin
from boothguard.session.agent_side import SessionsPlugin
from tests.helpers.emitter import ListEmitter

try:
    from tests.lock.mocklogind import MockLogind
except ImportError as exc:  # pragma: no cover - the suite installs python-dbusmock
    pytest.skip(f"python-dbusmock/dbus-python not installed: {exc}", allow_module_level=True)

if shutil.which("dbus-daemon") is None:  # pragma: no cover
    pytest.skip("dbus-daemon is not installed (tests/apt-packages.txt)", allow_module_level=True)


@pytest.fixture
def logind() -> Iterator[MockLogind]:
    mock = MockLogind()
    try:
        yield mock
    finally:
        mock.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other uids can traverse (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="bg-lock-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Harness:
    def __init__(self, tmp: Path, runtime: Path, address: str, lock: dict[str, Any]) -> None:
        self.config = AgentConfig(
            agent={"state_dir": tmp / "state", "runtime_dir": runtime},
            lock={"bus_address": address, "verify_seconds": 0.5, "refresh_seconds": 0.5, **lock},
        )
        self.emitter = ListEmitter()
        self.control = ControlServer(self.config.socket_path, self.config.agent.control_group)
        self.ctx = AgentContext(
            config=self.config,
            events=self.emitter,
            control=self.control,
            wall_clock=time.time,
            monotonic=time.monotonic,
        )
        self.sessions = SessionsPlugin(self.config)
        self.lock = LockPlugin(self.config)

    @property
    def socket(self) -> Path:
        return self.config.socket_path

    async def start(self, with_sessions: bool = True) -> Harness:
        await self.control.start()
        if with_sessions:
            await self.sessions.start(self.ctx)
        await self.lock.start(self.ctx)
        return self

    async def stop(self) -> None:
        await self.lock.stop()
        await self.sessions.stop()
        await self.control.stop()

    async def restart_lock(self) -> None:
        """Stop the lock plugin and start a new one on the same context (an agent restart)."""
        await self.lock.stop()
        self.control._handlers.pop("away", None)
        self.control._handlers.pop("back", None)
        self.lock = LockPlugin(self.config)
        await self.lock.start(self.ctx)

    def of_type(self, etype: str) -> list[Draft]:
        return [e for e in self.emitter.events if e.type == etype]

    async def wait_event(
        self, etype: str, pred: Callable[[Draft], bool] = lambda e: True, timeout: float = 5.0
    ) -> Draft:
        async with asyncio.timeout(timeout):
            while True:
                for ev in self.emitter.events:
                    if ev.type == etype and pred(ev):
                        return ev
                self.emitter.changed.clear()
                await self.emitter.changed.wait()

    async def request(self, op: str, timeout: float = 20.0, **fields: Any) -> dict[str, Any]:
        """One control request from this (root) process; returns the raw reply."""
        reader, writer = await asyncio.open_unix_connection(str(self.socket))
        try:
            writer.write(json.dumps({"op": op, **fields}).encode() + b"\n")
            await writer.drain()
            async with asyncio.timeout(timeout):
                line = await reader.readline()
            reply: dict[str, Any] = json.loads(line)
            return reply
        finally:
            writer.close()


@pytest.fixture
async def make_harness(
    tmp_path: Path, shared_dir: Path, logind: MockLogind
) -> AsyncIterator[Callable[..., Any]]:
    made: list[Harness] = []

    async def make(with_sessions: bool = True, **lock: Any) -> Harness:
        h = Harness(tmp_path, shared_dir / "run", logind.address, lock)
        made.append(h)
        return await h.start(with_sessions)

    yield make
    for h in made:
        with contextlib.suppress(Exception):
            await h.stop()


class WatcherClient:
    """A session watcher speaking the real protocol over the control socket (registers, heartbeats,
    answers the agent's pushes). `on_push` decides each answer."""

    def __init__(self, socket: Path, session_id: str, on_push: Callable[[dict[str, Any]], Any]) -> None:
        self.socket, self.session_id, self.on_push = socket, session_id, on_push
        self.pushes: list[dict[str, Any]] = []
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0

    async def start(self) -> WatcherClient:
        reader, self._writer = await asyncio.open_unix_connection(str(self.socket))
        self._task = asyncio.create_task(self._read(reader))
        reply = await self.call({"op": "watcher.register", "session_id": self.session_id, "display": ":99"})
        assert reply.get("ok"), reply
        return self

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._writer is not None
        self._next += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = fut
        self._writer.write(json.dumps({**message, "id": self._next}).encode() + b"\n")
        await self._writer.drain()
        async with asyncio.timeout(5):
            return await fut

    async def heartbeat(self, idle_seconds: float) -> None:
        await self.call({"op": "watcher.heartbeat", "idle_seconds": idle_seconds})

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            msg = json.loads(line)
            if "push" not in msg:
                fut = self._waiting.pop(msg.get("id"), None) if isinstance(msg.get("id"), int) else None
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                continue
            self.pushes.append(msg)
            asyncio.create_task(self._answer(msg))  # noqa: RUF006 -- lives as long as the connection

    async def _answer(self, msg: dict[str, Any]) -> None:
        answer = await asyncio.to_thread(self.on_push, msg)
        if answer is None or self._writer is None:
            return
        self._writer.write(json.dumps({"op": "watcher.reply", "rid": msg["rid"], **answer}).encode() + b"\n")
        await self._writer.drain()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
