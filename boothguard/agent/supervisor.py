"""One supervisor for the agent's core tasks (spool writer loop, shipper, plugin drains, heartbeats).

A core task that ends while the agent runs, by an exception or by returning, is a dead part of the
pipeline: events would stop moving while the process looks alive. The supervisor records the first such
death; the agent then stops feeding the systemd watchdog and exits 1 so systemd restarts it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from boothguard import log

_log = log.get("agent.supervisor")


class Supervisor:
    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[Any], str] = {}
        self.dead = asyncio.Event()  # set at the first core task death
        self.verdict: str | None = None  # None: all core tasks alive; else which one died, and why
        self._stopping = False

    def watch(self, task: asyncio.Task[Any], name: str | None = None) -> asyncio.Task[Any]:
        """Watch a task that must run until the agent stops."""
        self._tasks[task] = name or task.get_name()
        task.add_done_callback(self._done)
        return task

    def stopping(self) -> None:
        """The agent is stopping: tasks ending from now on are expected."""
        self._stopping = True

    @property
    def alive(self) -> bool:
        return self.verdict is None

    def names(self) -> list[str]:
        return sorted(self._tasks.values())

    def _done(self, task: asyncio.Task[Any]) -> None:
        name = self._tasks.pop(task, task.get_name())
        if self._stopping:
            return
        if task.cancelled():
            reason = "cancelled"
        else:
            exc = task.exception()
            reason = "returned" if exc is None else repr(exc)[:500]
        if self.verdict is None:
            self.verdict = f"{name}: {reason}"
            _log.critical("core_task_died", task=name, reason=reason)
        self.dead.set()

    def status(self) -> dict[str, Any]:
        return {"alive": self.alive, "verdict": self.verdict, "tasks": self.names()}


def unsupervised(task: asyncio.Task[Any], name: str | None = None) -> asyncio.Task[Any]:
    """The default for contexts built without a supervisor (tests of one plugin)."""
    return task
