"""The session watcher's clipboard: copies (X11, Wayland) and pastes (X RECORD) → events; `clear` policy."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from boothguard import log
from boothguard.session.watcher_base import WatcherBase, call_soon

_log = log.get("watcher")


class ClipboardEvents(WatcherBase):
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
            on_copy=lambda c: call_soon(loop, self._on_copy, c),
            should_clear=self._should_clear,
            max_read_bytes=self.clip.max_read_bytes,
            convert_timeout=self.clip.convert_timeout_seconds,
        )
        watcher.start()
        if not watcher.ready.wait(10) or watcher.error is not None:
            raise RuntimeError(f"clipboard watcher did not start: {watcher.error!r}")
        self._clipboard = watcher
        self._closers.append(watcher.stop)

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
