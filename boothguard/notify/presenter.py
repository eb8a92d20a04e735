"""The watcher's half: render a `notify` push in the operator's language and show it on the desktop.

Answers the push with {"shown": bool, "language": …, "reason": …}; never raises, so a desktop without a
notification service changes nothing but the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boothguard import log
from boothguard.notify.catalog import Language, language_from_env, render
from boothguard.notify.desktop import DesktopNotifier, NotifyError, session_bus_address

_log = log.get("notify.presenter")
# Kinds whose next notification replaces the previous one on screen (a countdown, a running count).
REPLACING = frozenset({"idle_lock_warning", "usb_blocked", "clipboard_cleared", "capture_stopped"})


class Presenter:
    def __init__(self, env: Mapping[str, str], notifier: DesktopNotifier | None = None) -> None:
        self.language: Language = language_from_env(env)
        self.notifier = notifier or DesktopNotifier(session_bus_address(env))
        self._last_id: dict[str, int] = {}
        self.shown = 0
        self.failed = 0

    async def present(self, kind: str, params: Any) -> dict[str, Any]:
        params = params if isinstance(params, Mapping) else {}
        msg = render(kind, params, self.language)
        if msg is None:
            return {"shown": False, "language": self.language, "reason": "unknown_kind"}
        replaces = self._last_id.get(msg.kind, 0) if msg.kind in REPLACING else 0
        try:
            shown = await self.notifier.notify(msg, replaces)
        except NotifyError as exc:
            self.failed += 1
            _log.warning("notification_not_shown", kind=msg.kind, reason=exc.reason, detail=exc.detail[:200])
            return {"shown": False, "language": self.language, "reason": exc.reason}
        except Exception as exc:  # a notification must never take the watcher down
            self.failed += 1
            _log.exception("notification_failed", kind=msg.kind)
            return {"shown": False, "language": self.language, "reason": f"error:{type(exc).__name__}"}
        self._last_id[msg.kind] = shown.id
        self.shown += 1
        _log.info("notification_shown", kind=msg.kind, language=self.language, id=shown.id)
        return {"shown": True, "language": self.language, "id": shown.id}
