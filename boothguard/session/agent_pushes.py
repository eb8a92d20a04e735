"""The session watcher's side of the agent link: registration, policy, heartbeats and the agent's pushes
(screensaver state, the in-session lock fallback, notifications, policy updates)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
from collections.abc import Mapping
from typing import Any

from boothguard import log
from boothguard.session import protocol as p
from boothguard.session.policy import ClipboardPolicy, ScreenshotPolicy, from_message
from boothguard.session.watcher_base import WatcherBase

_log = log.get("watcher")


class AgentPushes(WatcherBase):
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
