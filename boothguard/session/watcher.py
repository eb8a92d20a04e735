"""`boothguard session`: the per-session watcher. Sources → policy → actions → the agent.

The policy (`[clipboard]`, `[screenshot]`) comes from the agent at registration, so editing a file the
operator can write changes nothing. Sources start after the first registration; what cannot run here is
reported as missing in `session.started`, never pretended.

This module composes the parts and runs them: the agent link (`agent_pushes`), the clipboard
(`clipboard_events`), screen captures (`capture_events`); capabilities are probed by `capabilities`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from boothguard import log
from boothguard.session.agent_pushes import AgentPushes
from boothguard.session.capabilities import probe
from boothguard.session.capture_events import CaptureEvents
from boothguard.session.clipboard_events import ClipboardEvents
from boothguard.session.link import AgentLink
from boothguard.session.options import WatcherOptions, session_id_from_env
from boothguard.session.policy import ClipboardPolicy, ScreenshotPolicy
from boothguard.session.watcher_base import call_soon

__all__ = ["Watcher", "WatcherOptions", "session_id_from_env"]

_log = log.get("watcher")


class Watcher(AgentPushes, ClipboardEvents, CaptureEvents):
    def __init__(self, opts: WatcherOptions) -> None:
        self.opts = opts
        self.clip = ClipboardPolicy()
        self.shot = ScreenshotPolicy()
        self.key = b""
        self.capabilities: list[str] = []
        self.missing: dict[str, str] = {}
        self.sources_started = False
        self._stop = asyncio.Event()
        self._stop_reason = "signal"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closers: list[Any] = []
        self._idle: Any = None
        self._clipboard: Any = None
        self._record: Any = None
        self._recent: dict[tuple[Any, ...], float] = {}
        self._copies: dict[str, Any] = {}  # the last copy per selection (X11): what a paste delivers
        self._pasted: dict[tuple[Any, ...], None] = {}  # (client, connection, selection, owner, copy) seen
        self._presenter: Any = None
        self.link = AgentLink(
            opts.socket_path,
            registration=self._registration,
            on_registered=self._on_registered,
            on_push=self._on_push,
            heartbeat=self._heartbeat_fields,
        )

    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, lambda: self._spawn(self._on_signal()))
        self._probe()
        _log.info(
            "watcher_starting",
            session=self.opts.session_id,
            display=self.opts.display,
            capabilities=self.capabilities,
            missing=self.missing,
        )
        link_task = asyncio.create_task(self.link.run(self._stop))
        self._spawn(self._monitor())
        await self._stop.wait()
        said = await self.link.goodbye(self._stop_reason)
        _log.info("watcher_stopping", reason=self._stop_reason, goodbye=said)
        self._stop.set()
        link_task.cancel()
        await asyncio.gather(link_task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._close_sources()
        return 0

    async def _on_signal(self) -> None:
        # A SIGTERM at logout comes with the display going away; one while it is still up is reported as
        # the watcher being stopped (the agent treats it as missing).
        alive = await asyncio.to_thread(self._display_alive)
        self.request_stop("signal" if alive else "display_closed")

    def _close_sources(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()
        self._closers.clear()

    def _probe(self) -> None:
        self.capabilities, self.missing = probe(self.opts)

    def _start_sources(self) -> None:
        self.sources_started = True
        if "idle.x11" in self.capabilities:
            self._start(self._start_idle, "idle")
        if "clipboard.x11" in self.capabilities and self.clip.enabled:
            self._start(self._start_x11_clipboard, "clipboard")
        if "clipboard.wayland" in self.capabilities and self.clip.enabled:
            self._spawn(self._wayland_clipboard())
        captures = self.shot.enabled and self.shot.record and "capture.record" in self.capabilities
        pastes = self.clip.enabled and "clipboard.paste" in self.capabilities and self._clipboard is not None
        if captures or pastes:  # one RECORD context for both
            name = "capture.record" if captures else "clipboard.paste"
            self._start(lambda: self._start_record(captures, pastes), name)
        if self.shot.enabled:
            if self.shot.tools:
                self._spawn(self._tool_poller())
            self._start(self._start_dirs, "capture.files")

    def _start(self, starter: Any, name: str) -> None:
        try:
            starter()
        except Exception as exc:
            _log.error("source_failed", source=name, error=repr(exc))
            self.missing[name] = f"failed to start: {type(exc).__name__}: {exc}"[:200]
            self._send("session.watcher_degraded", "medium", {"source": name, "error": self.missing[name]})

    def _start_idle(self) -> None:
        from boothguard.session.idle import IdleProbe

        assert self.opts.display
        self._idle = IdleProbe(self.opts.display)
        self._closers.append(self._idle.close)

    def _start_record(self, captures: bool, pastes: bool) -> None:
        from boothguard.session.x11_capture import RecordCapture

        assert self.opts.display
        assert self._loop is not None
        loop = self._loop
        rec = RecordCapture(
            self.opts.display,
            (lambda c: call_soon(loop, self._on_capture, c)) if captures else None,
            self.shot.min_pixels,
            on_paste=(lambda r: call_soon(loop, self._on_paste, r)) if pastes else None,
            paste_selections=("CLIPBOARD", "PRIMARY") if self.clip.watch_primary else ("CLIPBOARD",),
        )
        if self._clipboard is not None:
            rec.ignored_windows.add(self._clipboard.win.id)
        rec.start()
        rec.ready.wait(5)
        self._record = rec
        self._closers.append(rec.stop)

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            clip = self._clipboard
            if clip is not None and not clip.alive and clip.error is not None:
                _log.warning("display_lost", error=repr(clip.error))
                self.request_stop("display_closed")
                return
