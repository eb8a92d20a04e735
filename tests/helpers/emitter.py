"""An in-memory EventEmitter for plugin tests that run without the daemon (no spool)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from boothguard.events import Draft


class ListEmitter:
    def __init__(self) -> None:
        self.events: list[Draft] = []
        self.changed = asyncio.Event()
        self._observers: list[Callable[[Draft], None]] = []

    async def emit(self, draft: Draft) -> None:
        self._commit(draft)

    def try_emit(self, draft: Draft) -> bool:
        self._commit(draft)
        return True

    def subscribe(self, observer: Callable[[Draft], None]) -> None:
        self._observers.append(observer)

    def _commit(self, draft: Draft) -> None:
        self.events.append(draft)
        self.changed.set()
        for observer in self._observers:
            observer(draft)

    def of(self, etype: str) -> list[Draft]:
        return [e for e in self.events if e.type == etype]
