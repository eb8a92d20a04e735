"""The agent's command runner: each command its own task, acknowledged when done; a failing or hanging one
is isolated and reported; the number running is bounded (the rest comes again with the next answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from boothguard.agent.remote import CommandRunner
from boothguard.config import AgentConfig
from boothguard.events import Draft


class ScriptedPlugin:
    """A source answering commands by type: "boom" raises, "wait" waits for `release`, "ok" is done."""

    name = "test"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[str] = []

    async def start(self, ctx: Any) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, Any]:
        return {}

    def reload(self, config: AgentConfig) -> None: ...

    async def handle_command(self, command: Mapping[str, Any]) -> bool | None:
        self.started.append(str(command["id"]))
        kind = command.get("type")
        if kind == "boom":
            raise RuntimeError("plugin bug")
        if kind == "wait":
            await self.release.wait()
            return True
        if kind == "hang":
            await asyncio.Event().wait()
        return True if kind == "ok" else None


class Acks:
    def __init__(self) -> None:
        self.drafts: list[Draft] = []
        self.changed = asyncio.Event()

    async def emit(self, draft: Draft) -> None:
        self.drafts.append(draft)
        self.changed.set()

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {str(d.data["command_id"]): dict(d.data) for d in self.drafts}

    async def wait_for(self, *ids: str) -> None:
        async with asyncio.timeout(5):
            while not set(ids) <= set(self.by_id()):
                self.changed.clear()
                await self.changed.wait()


async def until(cond: Any) -> None:
    async with asyncio.timeout(5):
        while not cond():
            await asyncio.sleep(0.001)


async def test_commands_run_apart_and_are_acked_when_done() -> None:
    plugin, acks = ScriptedPlugin(), Acks()
    runner = CommandRunner(lambda: [plugin], acks.emit, max_running=3, timeout=0.5)
    runner.submit([{"id": "w", "type": "wait"}, {"id": "b", "type": "boom"}, {"id": "k", "type": "ok"}])
    await acks.wait_for("b", "k")
    assert acks.by_id()["b"]["status"] == "failed"  # the bug fails that command, nothing else
    assert acks.by_id()["k"]["status"] == "done"
    assert "w" not in acks.by_id()
    await until(lambda: runner.running == ["w"])
    runner.submit([{"id": "w", "type": "wait"}, {"id": "k", "type": "ok"}])  # delivered again: not rerun
    plugin.release.set()
    await acks.wait_for("w")
    assert plugin.started == ["w", "b", "k"]
    assert [d.severity for d in acks.drafts] == ["high", "medium", "medium"]
    runner.submit([{"id": "u", "type": "nobody.handles"}, {"id": "h", "type": "hang"}])
    await acks.wait_for("u", "h")
    assert acks.by_id()["u"]["status"] == "unknown"
    assert acks.by_id()["h"] == {
        "command_id": "h",
        "type": "hang",
        "status": "failed",
        "error": "no result in 0.5 s",
    }
    await until(lambda: runner.running == [])


async def test_the_number_running_is_bounded_and_the_rest_comes_again() -> None:
    plugin, acks = ScriptedPlugin(), Acks()
    runner = CommandRunner(lambda: [plugin], acks.emit, max_running=2)
    runner.submit([{"id": f"w{i}", "type": "wait"} for i in range(4)])
    assert sorted(runner.running) == ["w0", "w1"]
    assert runner.deferred == 2
    plugin.release.set()
    await acks.wait_for("w0", "w1")
    await until(lambda: runner.running == [])
    runner.submit([{"id": f"w{i}", "type": "wait"} for i in range(4)])  # the collector's next answer
    await acks.wait_for("w2", "w3")
    assert plugin.started == ["w0", "w1", "w2", "w3"]


async def test_stop_cuts_off_a_running_command_without_acking_it() -> None:
    plugin, acks = ScriptedPlugin(), Acks()
    runner = CommandRunner(lambda: [plugin], acks.emit)
    runner.submit([{"id": "h", "type": "hang"}])
    await asyncio.sleep(0)
    await runner.stop()
    assert acks.drafts == []  # unacknowledged: the collector delivers it again after the restart
    assert runner.running == []
