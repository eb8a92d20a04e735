"""A thread that emits custom events through the agent's control socket as fast as it answers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from boothguard.agent.client import request


class Emitter:
    """Counts only events the agent confirmed: one it never answered was never logged."""

    def __init__(self, socket: Path, limit: int = 20000) -> None:
        self.socket, self.limit = socket, limit
        self.confirmed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Emitter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set() and i < self.limit:
            i += 1
            try:
                self.confirmed.append(request(self.socket, "emit", type="custom.load", data={"i": i})["seq"])
            except Exception:
                time.sleep(0.01)  # agent down (killed, restarting)
