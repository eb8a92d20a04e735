"""The session watcher's screen captures: X RECORD requests, capture tools, new files in screenshot dirs →
events, and the policy's kill / quarantine / delete."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from boothguard import log
from boothguard.session.watcher_base import WatcherBase, call_soon

_log = log.get("watcher")


class CaptureEvents(WatcherBase):
    def _start_dirs(self) -> None:
        from boothguard.session.screenshots import ScreenshotDirs, resolve_dirs

        assert self._loop is not None
        loop = self._loop
        dirs = resolve_dirs(self.shot.dirs, self.opts.home)
        watcher = ScreenshotDirs(
            dirs, self.shot.extensions, lambda path: call_soon(loop, self._on_file, path)
        )
        watched = watcher.start()
        _log.info("screenshot_dirs", watched=[str(d) for d in watched])
        self._closers.append(watcher.stop)

    def _dedupe(self, key: tuple[Any, ...]) -> bool:
        now = time.monotonic()
        if len(self._recent) > 1000:
            self._recent = {k: t for k, t in self._recent.items() if now - t < self.shot.dedupe_seconds}
        last = self._recent.get(key)
        self._recent[key] = now
        return last is not None and now - last < self.shot.dedupe_seconds

    def _on_capture(self, cap: Any) -> None:
        if cap.pid == os.getpid() or self._allowed(cap.app, self.shot.allow_apps):
            return
        if self._dedupe(("record", cap.pid or cap.client_base)):
            return
        what = {
            "request": cap.request,
            "root": cap.root,
            "width": cap.width,
            "height": cap.height,
            "pixels": cap.pixels,  # summed over the client's requests in the window (tiles add up)
            "requests": cap.requests,
        }
        self._detected("record", cap.app, cap.pid, what, cap.pid_source)

    def _detected(
        self,
        method: str,
        app: str | None,
        pid: int | None,
        what: Mapping[str, Any],
        pid_source: str | None = None,
    ) -> None:
        action = self.shot.policy if self.shot.policy != "report" else None
        data = {
            "method": method,
            "app": app,
            "pid": pid,
            "pid_source": pid_source,
            "what": dict(what),
            "policy": self.shot.policy,
        }
        self._send("screenshot.detected", "high", data)
        if action is not None and pid is not None and method != "file":
            self._spawn(self._kill(method, app, pid))

    async def _kill(self, method: str, app: str | None, pid: int) -> None:
        ok, error = True, None
        try:
            proc = psutil.Process(pid)
            if proc.uids().real != os.getuid() and os.getuid() != 0:
                raise PermissionError("not our process")
            proc.kill()
        except psutil.NoSuchProcess:
            ok, error = False, "already exited"
        except (psutil.AccessDenied, PermissionError) as exc:
            ok, error = False, str(exc) or "permission denied"
        self._send(
            "screenshot.blocked",
            "high" if not ok else "medium",
            {"method": method, "action": "kill", "app": app, "pid": pid, "ok": ok, "error": error},
        )

    async def _tool_poller(self) -> None:
        from boothguard.session.tools import ToolScanner

        scanner = ToolScanner(self.shot.tools)
        found = await asyncio.to_thread(scanner.prime)
        while True:
            for hit in found:
                if not self._allowed(hit.name, self.shot.allow_apps) and not self._dedupe(
                    ("process", hit.pid)
                ):
                    self._detected("process", hit.name, hit.pid, {"tool": hit.tool, "argv0": hit.cmdline[:1]})
            await asyncio.sleep(self.shot.process_poll_seconds)
            found = await asyncio.to_thread(scanner.poll)

    def _on_file(self, path: Path) -> None:
        if self._dedupe(("file", str(path))):
            return
        data = {"file": path.name, "dir": str(path.parent), "suffix": path.suffix.lower()}
        self._detected("file", None, None, data)
        if self.shot.policy in ("quarantine", "delete"):
            self._spawn(self._handle_file(path, self.shot.policy))

    async def _handle_file(self, path: Path, action: str) -> None:
        await _settle(path)
        ok, error, extra = True, None, {}
        if action == "delete":
            try:
                os.unlink(path)
            except OSError as exc:
                ok, error = False, exc.strerror or repr(exc)
        else:
            try:
                reply = await asyncio.to_thread(self._hand_over, path)
                ok = bool(reply.get("ok"))
                error = None if ok else str(reply.get("error"))
                extra = {"quarantined": reply.get("quarantined")} if ok else {}
            except (TimeoutError, ConnectionError, OSError, ValueError) as exc:
                ok, error = False, f"agent unreachable: {type(exc).__name__}"
        self._send(
            "screenshot.blocked",
            "medium" if ok else "high",
            {
                "method": "file",
                "action": action,
                "file": path.name,
                "dir": str(path.parent),
                "ok": ok,
                "error": error,
                **extra,
            },
        )

    def _hand_over(self, path: Path) -> dict[str, Any]:
        """Open the file as the operator, hand the fd to the agent, and unlink it once the copy is safe;
        root never sees the path (issue 14: a swapped directory made root unlink its own files)."""
        from boothguard.session.quarantine_door import door_path, hand_over

        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            reply = hand_over(door_path(self.opts.socket_path), self.opts.session_id, fd, path.name)
        finally:
            os.close(fd)
        if reply.get("ok"):
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                os.unlink(path)
            else:
                reply = {**reply, "ok": False, "error": "file was replaced while being quarantined"}
        return reply


async def _settle(path: Path, timeout: float = 2.0) -> None:
    """Wait until a new file stops growing (the capture tool finished writing)."""
    last = -1
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            size = os.stat(path).st_size
        except OSError:
            return
        if size == last and size > 0:
            return
        last = size
        await asyncio.sleep(0.1)
