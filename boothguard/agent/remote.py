"""Remote commands from the collector, each run as its own task: bounded, isolated, acknowledged when done.

The shipper hands the commands of an ingest answer over and goes on shipping: a `lock` whose proof takes
minutes must not hold the events (its own `screen.locked` among them). A command is acknowledged with
`agent.command_ack` once it has finished; the collector delivers it again until that ack arrives, so a
command left out (too many running) or cut off by a stop is simply run when it comes next.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from boothguard import log
from boothguard.agent.plugin import Plugin
from boothguard.events import Draft

_log = log.get("agent.remote")
MAX_RUNNING = 8
# Longer than any lock proof the configuration allows; past it the command is cut off and acked as failed.
COMMAND_TIMEOUT = 900.0
SEEN_MAX = 1000


class CommandRunner:
    def __init__(
        self,
        plugins: Callable[[], Sequence[Plugin]],
        emit: Callable[[Draft], Awaitable[Any]],
        *,
        max_running: int = MAX_RUNNING,
        timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        self._plugins, self._emit = plugins, emit
        self.max_running, self.timeout = max_running, timeout
        self._seen: deque[str] = deque(maxlen=SEEN_MAX)
        self._running: dict[str, asyncio.Task[None]] = {}
        self.deferred = 0  # left for the collector to deliver again: too many running

    def submit(self, commands: list[dict[str, Any]]) -> None:
        """The shipper's `CommandHandler`: start each new command and return at once."""
        for command in commands:
            cid = str(command.get("id", ""))
            if not cid or cid in self._seen or cid in self._running:
                continue  # delivered again until our ack reaches the collector
            if len(self._running) >= self.max_running:
                self.deferred += 1
                _log.warning("command_deferred", command=cid, running=len(self._running))
                continue
            task = asyncio.create_task(self._run(cid, command), name=f"command-{cid}")
            self._running[cid] = task
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running = {cid: t for cid, t in self._running.items() if t is not task}
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("command_ack_failed", task=task.get_name(), error=repr(exc))

    async def _run(self, cid: str, command: Mapping[str, Any]) -> None:
        ctype = str(command.get("type", ""))
        _log.info("command_started", command=cid, type=ctype)
        error: str | None = None
        try:
            async with asyncio.timeout(self.timeout):
                status = await self._dispatch(cid, command)
        except TimeoutError:
            status, error = "failed", f"no result in {self.timeout:g} s"
            _log.error("command_timeout", command=cid, type=ctype)
        self._seen.append(cid)
        data: dict[str, Any] = {"command_id": cid, "type": ctype, "status": status}
        if error is not None:
            data["error"] = error
        await self._emit(Draft("agent.command_ack", "medium" if status == "done" else "high", data))

    async def _dispatch(self, cid: str, command: Mapping[str, Any]) -> str:
        for plugin in self._plugins():
            try:
                result = await plugin.handle_command(command)
            except Exception:  # one plugin's bug fails this command, nothing else
                _log.exception("command_failed", plugin=plugin.name, command=cid)
                return "failed"
            if result is not None:
                return "done" if result else "failed"
        return "unknown"

    @property
    def running(self) -> list[str]:
        return list(self._running)

    async def stop(self) -> None:
        """Cut off what still runs; unacknowledged, those are delivered and run again after a restart."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
