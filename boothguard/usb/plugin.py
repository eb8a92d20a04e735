"""The agent plugin: wires the guard to uevents and to the event pipeline through a bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from boothguard import log
from boothguard.events import Draft
from boothguard.usb import exceptions as exc_mod
from boothguard.usb.guard import UsbGuard
from boothguard.usb.settings import UsbSection
from boothguard.usb.sysfs import Sysfs
from boothguard.usb.uevents import UeventSource

if TYPE_CHECKING:
    from boothguard.agent.plugin import AgentContext, EventEmitter
    from boothguard.config import AgentConfig

_log = log.get("usb.plugin")
QUEUE_MAX = 1000


class UsbPlugin:
    name = "usb"

    def __init__(
        self,
        settings: UsbSection,
        source_factory: Callable[[str], UeventSource] = UeventSource,
        sysfs_factory: Callable[[UsbSection], Sysfs] = lambda s: Sysfs(root=s.sysfs_root),
    ) -> None:
        self.settings = settings
        self._source_factory = source_factory
        self._sysfs_factory = sysfs_factory
        self.guard: UsbGuard | None = None
        self.source: UeventSource | None = None
        self._queue: asyncio.Queue[Draft] = asyncio.Queue(maxsize=QUEUE_MAX)
        self._task: asyncio.Task[None] | None = None
        self._events: EventEmitter | None = None
        self.overflowed = 0  # events that went past our queue to the writer's `try_emit`
        self.exceptions: exc_mod.UsbExceptions | None = None
        self._expiry: asyncio.Task[None] | None = None

    async def start(self, ctx: AgentContext) -> None:
        self.guard = UsbGuard(self._sysfs_factory(self.settings), self.settings, self._enqueue, ctx.monotonic)
        self._events = ctx.events
        self._task = asyncio.create_task(self._drain(ctx.events), name="usb-events")
        ctx.watch(self._task, "usb-events")
        state = ctx.config.agent.state_dir / "usb-exceptions.json"
        ex = exc_mod.UsbExceptions(
            self.guard, self.guard.sysfs, self._enqueue, ctx.monotonic, ctx.wall_clock, state
        )
        self.guard.exceptions = self.exceptions = ex
        ctx.control.register(exc_mod.OP_ALLOW, exc_mod.control_handler(ex), "root")
        self._expiry = asyncio.create_task(exc_mod.expiry_loop(ex), name="usb-exceptions")
        ctx.watch(self._expiry, "usb-exceptions")
        if self.settings.mode == "off":
            _log.info("usb_off")
            return
        # Lock first (new devices arrive unauthorized), listen, then decide what is already there.
        self.guard.lock_buses()
        self.source = self._source_factory(self.settings.uevent_source)
        self.source.start(asyncio.get_running_loop(), self.guard.on_uevent)
        self.guard.apply_present()
        ex.recover()

    def _enqueue(self, draft: Draft) -> None:
        try:
            self._queue.put_nowait(draft)
        except asyncio.QueueFull:
            # Past our own queue, straight to the writer's: it queues it or counts and declares the loss.
            self.overflowed += 1
            if self._events is None or not self._events.try_emit(draft):
                _log.error("usb_event_lost", type=draft.type)

    async def _drain(self, events: EventEmitter) -> None:
        while True:
            draft = await self._queue.get()
            await events.emit(draft)
            self._queue.task_done()

    async def stop(self) -> None:
        """Stop listening; flush queued events. Never re-authorizes anything."""
        if self.source is not None:
            self.source.stop()
        if self._expiry is not None:
            self._expiry.cancel()
        if self.exceptions is not None:
            self.exceptions.revoke_all("agent_stopping")  # temporary means: not past this run
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=3)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            # Whatever the drain did not reach goes to the writer, which commits or declares it at its stop.
            while not self._queue.empty() and self._events is not None:
                self._events.try_emit(self._queue.get_nowait())

    def status(self) -> dict[str, Any]:
        if self.guard is None:
            return {"mode": self.settings.mode, "started": False}
        exceptions = self.exceptions.status() if self.exceptions is not None else []
        return self.guard.status() | {
            "events_overflowed": self.overflowed,
            "queued": self._queue.qsize(),
            "exceptions": exceptions,
        }

    async def handle_command(self, command: Mapping[str, Any]) -> bool | None:
        if self.exceptions is None:
            return None
        return exc_mod.allow_from_command(self.exceptions, command)

    def reload(self, config: AgentConfig) -> None:
        new = config.usb
        if self.guard is None or new == self.settings:
            return
        if new.uevent_source != self.settings.uevent_source or new.sysfs_root != self.settings.sysfs_root:
            _log.warning("usb_reload_needs_restart", reason="uevent_source and sysfs_root apply on restart")
        self.settings = new
        self.guard.reconfigure(new)
        if self.source is None and new.mode != "off":
            self.source = self._source_factory(self.guard.settings.uevent_source)
            self.source.start(asyncio.get_running_loop(), self.guard.on_uevent)
