"""One in-process object per database engine (a collector process's caches), made on first use.

Keyed weakly by the engine, so a disposed store's cache goes with it; tests install their own (a short
ttl, a small bound, a controlled clock).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.engine import Engine

T = TypeVar("T")


class PerEngine(Generic[T]):
    def __init__(self, make: Callable[[Engine], T]) -> None:
        self._make = make
        self._by_engine: weakref.WeakKeyDictionary[Engine, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, engine: Engine) -> T:
        """The engine's one object, made on first use."""
        with self._lock:
            found = self._by_engine.get(engine)
            if found is None:
                found = self._by_engine[engine] = self._make(engine)
            return found

    def existing(self, engine: Engine) -> T | None:
        """The engine's object if one was made (an invalidation need not make one)."""
        with self._lock:
            return self._by_engine.get(engine)

    def install(self, engine: Engine, obj: T) -> T:
        with self._lock:
            self._by_engine[engine] = obj
        return obj
