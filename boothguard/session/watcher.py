"""`boothguard session`: the per-session watcher. Sources → policy → actions → the agent.

The policy (`[clipboard]`, `[screenshot]`) comes from the agent at registration, so editing a file the
operator can write changes nothing. Sources start after the first registration; what cannot run here is
reported as missing in `session.started`, never pretended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shlex
import shutil
import signal
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from boothguard import log
from boothguard.session import protocol as p
from boothguard.session.link import AgentLink, LinkDown, Outgoing
from boothguard.session.policy import ClipboardPolicy, ScreenshotPolicy, from_message
from boothguard.session.wl_registry import data_control, globals_of
from boothguard.session.wl_registry import socket_path as wayland_socket_path

_log = log.get("watcher")


def session_id_from_env(env: Mapping[str, str], display: str | None) -> str:
    """XDG_SESSION_ID, else the audit session (logind uses it as the session id), else the display."""
    sid = env.get("XDG_SESSION_ID", "")
    if sid and p.SESSION_ID.match(sid):
        return sid
    try:
        audit = Path("/proc/self/sessionid").read_text().strip()
        if audit and audit != "4294967295":
            return audit
    except OSError:
        pass
    return "display" + "".join(ch if ch.isalnum() else "_" for ch in (display or "none"))


@dataclass
class WatcherOptions:
    socket_path: Path
    display: str | None
    wayland_display: str | None
    session_id: str
    home: Path
    user: str
    extra_env: dict[str, str] = field(default_factory=dict)
    wayland_socket: Path | None = None

    @classmethod
    def from_env(cls, socket_path: Path, env: Mapping[str, str] | None = None) -> WatcherOptions:
        env = os.environ if env is None else env
        pw = pwd.getpwuid(os.getuid())
        display = env.get("DISPLAY") or None
        return cls(
            socket_path=socket_path,
            display=display,
            wayland_display=env.get("WAYLAND_DISPLAY") or None,
            session_id=session_id_from_env(env, display),
            home=Path(env.get("HOME") or pw.pw_dir),
            user=pw.pw_name,
            wayland_socket=wayland_socket_path(env),
        )


class Watcher:
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

    # -- lifecycle ------------------------------------------------------------------------------------

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

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stop.set()

    async def _on_signal(self) -> None:
        # A SIGTERM at logout comes with the display going away; one while it is still up is reported as
        # the watcher being stopped (the agent treats it as missing).
        alive = await asyncio.to_thread(self._display_alive)
        self.request_stop("signal" if alive else "display_closed")

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
            from Xlib import display as xdisplay

            d = xdisplay.Display(self.opts.display)
            d.close()
            return True
        except Exception:
            return False

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close_sources(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()
        self._closers.clear()

    # -- capabilities and sources ---------------------------------------------------------------------

    def _probe(self) -> None:  # noqa: PLR0912 -- one branch per capability
        caps: list[str] = ["capture.process", "capture.files", "lock_fallback"]
        missing: dict[str, str] = {}
        x_ok = False
        if self.opts.display:
            try:
                from Xlib import display as xdisplay

                d = xdisplay.Display(self.opts.display)
                exts = {
                    e for e in ("XFIXES", "X-Resource", "RECORD", "MIT-SCREEN-SAVER") if d.has_extension(e)
                }
                d.close()
                x_ok = True
            except Exception as exc:
                missing["x11"] = f"cannot open display {self.opts.display}: {type(exc).__name__}"
                exts = set()
            if x_ok:
                if self.opts.wayland_display:
                    pass  # the clipboard is watched through Wayland below; X sees only XWayland clients
                elif "XFIXES" in exts:
                    caps.append("clipboard.x11")
                    if "RECORD" in exts:
                        caps.append("clipboard.paste")
                    else:
                        missing["clipboard.paste"] = "RECORD extension missing: pasting apps not seen"
                else:
                    missing["clipboard"] = "XFIXES extension missing"
                if "X-Resource" not in exts:
                    missing["owner_pid"] = "X-Resource extension missing: owners via _NET_WM_PID only"
                if "RECORD" in exts:
                    caps.append("capture.record")
                else:
                    missing["capture.record"] = 'RECORD extension missing (Xorg: Load "record")'
                if "MIT-SCREEN-SAVER" in exts:
                    caps.append("idle.x11")
                else:
                    missing["idle"] = "MIT-SCREEN-SAVER extension missing"
        if self.opts.wayland_display:
            if (problem := self._wayland_clipboard_problem()) is None:
                caps.append("clipboard.wayland")
                missing["clipboard.paste"] = "Wayland does not show which application pastes"
            else:
                missing["clipboard"] = problem
            if not x_ok:
                missing["capture.record"] = "Wayland has no capture-request interception"
                missing["idle"] = "no idle source on Wayland without X"
        if not self.opts.display and not self.opts.wayland_display:
            missing["display"] = "neither DISPLAY nor WAYLAND_DISPLAY set"
        self.capabilities, self.missing = caps, missing

    def _wayland_clipboard_problem(self) -> str | None:
        """Why `wl-paste --watch` cannot watch this compositor's clipboard; None when it can."""
        path = self.opts.wayland_socket
        if path is None:
            return (
                "WAYLAND_DISPLAY set but XDG_RUNTIME_DIR missing: compositor not found, clipboard not watched"
            )
        try:
            found = globals_of(path, 3.0)
        except (OSError, ValueError) as exc:
            return f"compositor {path} not reachable ({exc}): clipboard not watched"[:200]
        control = data_control(found)
        if control is None:
            return "the compositor offers no data-control protocol (ext/wlr): clipboard not watched"
        if shutil.which("wl-paste") is None:
            return f"{control} offered but wl-paste (wl-clipboard) missing: clipboard not watched"
        return None

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

    def _start_x11_clipboard(self) -> None:
        from boothguard.session.x11_clipboard import ClipboardWatcher

        assert self.opts.display
        assert self._loop is not None
        selections = ["CLIPBOARD", "PRIMARY"] if self.clip.watch_primary else ["CLIPBOARD"]
        loop = self._loop
        watcher = ClipboardWatcher(
            self.opts.display,
            selections,
            key=lambda: self.key,
            on_copy=lambda c: _call_soon(loop, self._on_copy, c),
            should_clear=self._should_clear,
            max_read_bytes=self.clip.max_read_bytes,
            convert_timeout=self.clip.convert_timeout_seconds,
        )
        watcher.start()
        if not watcher.ready.wait(10) or watcher.error is not None:
            raise RuntimeError(f"clipboard watcher did not start: {watcher.error!r}")
        self._clipboard = watcher
        self._closers.append(watcher.stop)

    def _start_record(self, captures: bool, pastes: bool) -> None:
        from boothguard.session.x11_capture import RecordCapture

        assert self.opts.display
        assert self._loop is not None
        loop = self._loop
        rec = RecordCapture(
            self.opts.display,
            (lambda c: _call_soon(loop, self._on_capture, c)) if captures else None,
            self.shot.min_pixels,
            on_paste=(lambda r: _call_soon(loop, self._on_paste, r)) if pastes else None,
            paste_selections=("CLIPBOARD", "PRIMARY") if self.clip.watch_primary else ("CLIPBOARD",),
        )
        if self._clipboard is not None:
            rec.ignored_windows.add(self._clipboard.win.id)
        rec.start()
        rec.ready.wait(5)
        self._record = rec
        self._closers.append(rec.stop)

    def _start_dirs(self) -> None:
        from boothguard.session.screenshots import ScreenshotDirs, resolve_dirs

        assert self._loop is not None
        loop = self._loop
        dirs = resolve_dirs(self.shot.dirs, self.opts.home)
        watcher = ScreenshotDirs(
            dirs, self.shot.extensions, lambda path: _call_soon(loop, self._on_file, path)
        )
        watched = watcher.start()
        _log.info("screenshot_dirs", watched=[str(d) for d in watched])
        self._closers.append(watcher.stop)

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            clip = self._clipboard
            if clip is not None and not clip.alive and clip.error is not None:
                _log.warning("display_lost", error=repr(clip.error))
                self.request_stop("display_closed")
                return

    # -- link callbacks -------------------------------------------------------------------------------

    def _registration(self) -> dict[str, Any]:
        return {
            "session_id": self.opts.session_id,
            "display": self.opts.display or self.opts.wayland_display or "",
            "capabilities": self.capabilities,
            "missing": self.missing,
            "pid": os.getpid(),
        }

    def _on_registered(self, reply: Mapping[str, Any]) -> None:
        self._apply_policy(reply)
        key = reply.get("fingerprint_key")
        if isinstance(key, str):
            self.key = bytes.fromhex(key)
        if not self.sources_started:
            self._start_sources()

    def _apply_policy(self, message: Mapping[str, Any]) -> None:
        try:
            if isinstance(message.get("clipboard"), dict):
                self.clip = from_message(ClipboardPolicy, message["clipboard"])
            if isinstance(message.get("screenshot"), dict):
                self.shot = from_message(ScreenshotPolicy, message["screenshot"])
        except Exception as exc:  # a newer agent's keys: keep what we had
            _log.error("policy_rejected", error=repr(exc)[:300])

    async def _heartbeat_fields(self) -> dict[str, Any]:
        if self._idle is None:
            return {"idle_seconds": None, "screensaver_active": None}
        try:
            state = await asyncio.to_thread(self._idle.query)
        except Exception as exc:
            _log.warning("idle_query_failed", error=repr(exc))
            return {"idle_seconds": None, "screensaver_active": None}
        return {"idle_seconds": round(state.idle_seconds, 3), "screensaver_active": state.screensaver_active}

    async def _on_push(self, push: str, message: Mapping[str, Any]) -> dict[str, Any]:
        if push == p.PUSH_SCREENSAVER:
            fields = await self._heartbeat_fields()
            return {
                "active": fields["screensaver_active"],
                "idle_seconds": fields["idle_seconds"],
                "source": "mit-screen-saver" if self._idle is not None else None,
            }
        if push == p.PUSH_LOCK_FALLBACK:
            return await self._lock_fallback(message.get("commands", []))
        if push == p.PUSH_NOTIFY:
            return await self._notify(str(message.get("kind", "")), message.get("params", {}))
        if push == p.PUSH_CONFIG:
            self._apply_policy(message)
            return {"applied": True}
        return {"error": f"unknown push {push}"}

    async def _lock_fallback(self, commands: Any) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        for command in commands if isinstance(commands, list) else []:
            argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
            if not argv:
                continue
            shown = shlex.join(argv)
            if shutil.which(argv[0]) is None:
                results.append({"command": shown, "error": "not found"})
                continue
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    env={**os.environ, **self.opts.extra_env},
                )
                rc = await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                results.append({"command": shown, "error": "timeout"})
                continue
            except OSError as exc:
                results.append({"command": shown, "error": exc.strerror or repr(exc)})
                continue
            results.append({"command": shown, "rc": rc})
            if rc == 0:
                _log.info("lock_fallback_ran", command=shown)
                return {"ok": True, "method": shown, "results": results}
        return {"ok": False, "method": None, "results": results}

    async def _notify(self, kind: str, params: Any) -> dict[str, Any]:
        """The agent's `notify` push: shown on the desktop in the operator's language (boothguard.notify)."""
        if self._presenter is None:
            from boothguard.notify.presenter import Presenter

            self._presenter = Presenter({**os.environ, **self.opts.extra_env})
        answer: dict[str, Any] = await self._presenter.present(kind, params)
        return answer

    # -- events ---------------------------------------------------------------------------------------

    def _send(self, etype: str, severity: str, data: Mapping[str, Any], on_committed: Any = None) -> None:
        self.link.send_event(Outgoing(etype, severity, data, on_committed))

    def _allowed(self, app: str | None, allow: Collection[str]) -> bool:
        return app is not None and app in allow

    def _should_clear(self, copy: Any) -> bool:
        """Runs in the clipboard thread, before the event is sent: personal data outside allowed apps."""
        return (
            self.clip.policy == "clear"
            and bool(copy.pii)
            and not self._allowed(copy.app, self.clip.allow_apps)
        )

    def _on_copy(self, copy: Any) -> None:
        allowed = self._allowed(copy.app, self.clip.allow_apps)
        strong = {"credit_card", "my_number"} & set(copy.pii)
        severity = "info" if allowed or not copy.pii else "high" if strong else "medium"
        data = {
            "selection": copy.selection,
            "app": copy.app,
            "pid": copy.pid,
            "pid_source": copy.pid_source,
            "owner_exited": copy.owner_exited,
            "formats": copy.formats,
            "kind": copy.kind,
            "size": copy.size,
            "truncated": copy.truncated,
            "pii": copy.pii,
            "fingerprint": copy.fingerprint,
            "allowed_app": allowed,
            "policy": copy.extra.get("policy", self.clip.policy),  # what was applied to this copy
        }
        self._send("clipboard.copy", severity, data, getattr(copy, "on_committed", None))
        if getattr(copy, "owner_window", 0):
            self._copies[copy.selection] = copy
        if copy.cleared or copy.clear_error:
            self._send(
                "clipboard.cleared",
                "medium" if copy.cleared else "high",
                {
                    "selection": copy.selection,
                    "app": copy.app,
                    "pid": copy.pid,
                    "pii": copy.pii,
                    "fingerprint": copy.fingerprint,
                    "ok": bool(copy.cleared),
                    "error": copy.clear_error,
                    "reason": "personal_data",
                },
            )

    def _on_paste(self, paste: Any, tries: int = 0) -> None:
        """A client asked for a watched selection's content (X RECORD). Reported when the copy it gets held
        personal data and the copying or the pasting app is not on the allow-list; allowed → allowed is
        quiet, and so are copies without personal data and copies the `clear` policy emptied."""
        own = self._clipboard
        ours = {own.win.id} if own is not None else set()
        if paste.pid == os.getpid() or paste.requestor in ours or paste.owner in ours or not paste.owner:
            _log.debug("paste_ignored", pid=paste.pid, requestor=paste.requestor, owner=paste.owner)
            return  # our own reads, a selection we cleared (served empty), or no owner at all
        copy = self._copies.get(paste.selection)
        if copy is None or copy.owner_window != paste.owner:
            # The paste came before the clipboard thread finished reading the new copy: wait for it,
            # bounded (the read itself is bounded by convert_timeout).
            if tries < 20 and self._loop is not None:
                delay = max(0.05, self.clip.convert_timeout_seconds / 8)
                self._loop.call_later(delay, self._on_paste, paste, tries + 1)
            else:
                _log.info("paste_unmatched", selection=paste.selection, app=paste.app, pid=paste.pid)
            return
        if not copy.pii or copy.cleared:
            return
        key = (paste.client_base, paste.client_serial, paste.selection, paste.owner, copy.fingerprint)
        if key in self._pasted:
            return  # one event per pasting client and copy (a paste asks for several formats)
        if len(self._pasted) > 1000:
            self._pasted.clear()
        self._pasted[key] = None
        source_allowed = self._allowed(copy.app, self.clip.allow_apps)
        target_allowed = self._allowed(paste.app, self.clip.allow_apps)
        if source_allowed and target_allowed:
            return
        self._send(
            "clipboard.paste",
            "high",
            {
                "selection": paste.selection,
                "target_format": paste.target,
                "source_app": copy.app,
                "source_pid": copy.pid,
                "source_allowed": source_allowed,
                "target_app": paste.app,
                "target_pid": paste.pid,
                "target_pid_source": paste.pid_source,
                "target_allowed": target_allowed,
                "pii": copy.pii,
                "fingerprint": copy.fingerprint,
                "kind": copy.kind,
                "policy": self.clip.policy,
            },
        )

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
        what = {"request": cap.request, "root": cap.root, "width": cap.width, "height": cap.height}
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
                reply = await self.link.request(p.OP_QUARANTINE, path=str(path))
                ok = bool(reply.get("ok"))
                error = None if ok else str(reply.get("error"))
                extra = {"quarantined": reply.get("quarantined")} if ok else {}
            except (LinkDown, TimeoutError, ConnectionError, OSError) as exc:
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

    async def _wayland_clipboard(self) -> None:
        from boothguard.session.wayland import watch_wayland_clipboard

        def reported(copy: Any) -> None:
            copy.extra["policy"] = "report"  # `clear` is not applied on Wayland: say so, per copy
            self._on_copy(copy)

        rc = await watch_wayland_clipboard(self.clip.max_read_bytes, lambda: self.key, reported)
        # wl-paste gone: the compositor closed (logout) or refused the watch. Never keep claiming to watch.
        if not await asyncio.to_thread(self._display_alive):
            self.request_stop("display_closed")
            return
        self.missing["clipboard"] = f"wl-paste --watch exited (rc {rc}): clipboard not watched"
        if "clipboard.wayland" in self.capabilities:
            self.capabilities.remove("clipboard.wayland")
        self._send(
            "session.watcher_degraded", "medium", {"source": "clipboard", "error": self.missing["clipboard"]}
        )


def _call_soon(loop: asyncio.AbstractEventLoop, func: Any, arg: Any) -> None:
    """From a source thread into the loop; a closed loop (stopping) drops it."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(func, arg)


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
