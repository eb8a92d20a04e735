"""What the session watcher's parts share: its state, events to the agent, tasks, the display check."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Mapping
from typing import Any

from boothguard.session.link import AgentLink, Outgoing
from boothguard.session.options import WatcherOptions
from boothguard.session.policy import ClipboardPolicy, ScreenshotPolicy
from boothguard.session.wl_registry import globals_of


class WatcherBase:
    """The state the watcher's parts share; `boothguard.session.watcher.Watcher` sets it up."""

    opts: WatcherOptions
    clip: ClipboardPolicy
    shot: ScreenshotPolicy
    key: bytes
    capabilities: list[str]
    missing: dict[str, str]
    sources_started: bool
    link: AgentLink
    _stop: asyncio.Event
    _stop_reason: str
    _loop: asyncio.AbstractEventLoop | None
    _tasks: set[asyncio.Task[Any]]
    _closers: list[Any]
    _idle: Any
    _clipboard: Any
    _record: Any
    _recent: dict[tuple[Any, ...], float]
    _copies: dict[str, Any]
    _pasted: dict[tuple[Any, ...], None]
    _presenter: Any

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stop.set()

    def _display_alive(self) -> bool:
        if not self.opts.display:
            if self.opts.wayland_socket is None:
                return True
            try:
                globals_of(self.opts.wayland_socket, 3.0)
                return True
            except (OSError, ValueError):
                return False
        try:
            from boothguard.session.xconnect import open_display

            d = open_display(self.opts.display)
            d.close()
            return True
        except Exception:
            return False

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send(self, etype: str, severity: str, data: Mapping[str, Any], on_committed: Any = None) -> None:
        self.link.send_event(Outgoing(etype, severity, data, on_committed))

    def _allowed(self, app: str | None, allow: Collection[str]) -> bool:
        return app is not None and app in allow

    def _start_sources(self) -> None:
        raise NotImplementedError  # the composition (Watcher) starts the sources


def call_soon(loop: asyncio.AbstractEventLoop, func: Any, arg: Any) -> None:
    """From a source thread into the loop; a closed loop (stopping) drops it."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(func, arg)
