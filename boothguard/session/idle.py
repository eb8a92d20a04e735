"""Idle time and screensaver state from the MIT-SCREEN-SAVER extension (own X connection)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from boothguard.session.xconnect import open_display

SCREENSAVER_ON = 1
SCREENSAVER_CYCLE = 2


@dataclass(frozen=True)
class IdleState:
    idle_seconds: float
    screensaver_active: bool


class IdleProbe:
    def __init__(self, display_name: str) -> None:
        self._d: Any = open_display(display_name)
        if not self._d.has_extension("MIT-SCREEN-SAVER"):
            self._d.close()
            raise RuntimeError("MIT-SCREEN-SAVER extension missing")
        self._root = self._d.screen().root
        self._lock = threading.Lock()

    def query(self) -> IdleState:
        """Blocking round trip; call from a worker thread."""
        with self._lock:
            info = self._root.screensaver_query_info()
        return IdleState(info.idle / 1000.0, info.state in (SCREENSAVER_ON, SCREENSAVER_CYCLE))

    def close(self) -> None:
        with self._lock:
            self._d.close()
