"""Agent tokens verified recently, so most ingests skip the token query and its thread hop (issue 17).

Keyed by the token's SHA-256 (the plain token is never kept), bounded in entries, each trusted for `ttl`
seconds. An enrollment in this process forgets the booth's entries at once, so a rotated token stops working
here at once; on another collector sharing the database the old token keeps working at most `ttl` seconds.
Unknown tokens are not cached: a bad token always costs a query (and cannot fill the cache).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy.engine import Engine

from boothguard.collector.per_engine import PerEngine

TTL_SECONDS = 60.0  # longer than a booth's ~30 s between requests, so most of them hit
MAX_ENTRIES = 50_000


class TokenCache:
    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()  # hash -> host, verified at
        self._by_host: dict[str, str] = {}  # a host has one valid token at a time
        self._lock = threading.Lock()
        # Bumped by every forget: a verification that began before it must not be cached after it
        # (it may have read the token an enrollment has just replaced).
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> str | None:
        """The host a token hash was verified for within `ttl`, or None (ask the database)."""
        with self._lock:
            found = self._entries.get(digest)
            if found is None:
                return None
            host_id, at = found
            now = self.clock()
            if not at <= now < at + self.ttl:  # expired, or the clock went back
                self._drop(digest)
                return None
            return host_id

    def put(self, digest: str, host_id: str, epoch: int) -> None:
        """Remember a verification that began at `epoch` (read `self.epoch` before the query)."""
        with self._lock:
            if epoch != self.epoch:
                return
            old = self._by_host.get(host_id)
            if old is not None:
                self._drop(old)
            self._entries.pop(digest, None)
            self._entries[digest] = (host_id, self.clock())
            self._by_host[host_id] = digest
            while len(self._entries) > self.max_entries:
                self._drop(next(iter(self._entries)))  # the oldest verification goes first

    def forget_host(self, host_id: str) -> None:
        """The booth enrolled again here: its old token must stop working now."""
        with self._lock:
            self.epoch += 1
            digest = self._by_host.get(host_id)
            if digest is not None:
                self._drop(digest)

    def _drop(self, digest: str) -> None:
        host_id, _ = self._entries.pop(digest)
        if self._by_host.get(host_id) == digest:
            del self._by_host[host_id]


_CACHES: PerEngine[TokenCache] = PerEngine(TokenCache)


def for_engine(engine: Engine) -> TokenCache:
    """The one cache of this engine (the process's collector), made on first use."""
    return _CACHES.get(engine)


def install(cache: TokenCache) -> TokenCache:
    """Use this cache for its engine (tests: a short ttl, a small bound)."""
    return _CACHES.install(cache.engine, cache)


def host_enrolled(engine: Engine, host_id: str) -> None:
    found = _CACHES.existing(engine)
    if found is not None:
        found.forget_host(host_id)
