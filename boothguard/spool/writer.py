"""One writer thread owns the spool; asyncio callers queue drafts and are answered after the group commit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import compress, repeat
from operator import itemgetter
from typing import Any, TypeVar

from boothguard import log
from boothguard.errors import PersistenceError
from boothguard.events import Draft
from boothguard.spool.spool import Spool

_log = log.get("spool.writer")
T = TypeVar("T")
Body = dict[str, Any]
_Item = tuple[Draft, "asyncio.Future[Body] | None"]
_draft, _future = itemgetter(0), itemgetter(1)


class QueueFull(Exception):
    """The writer's bounded queue is full; the caller decides whether to wait or count a loss."""


class SpoolWriter:
    """Bounded queue → group commit. `emit` waits (backpressure); `try_emit` counts what it cannot queue."""

    def __init__(self, spool: Spool, *, queue_max: int = 10_000, max_batch: int = 2_000) -> None:
        self.spool = spool
        self.queue_max = queue_max
        self.max_batch = max_batch
        self._items: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._idle = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._task: asyncio.Task[None] | None = None
        self.lost_queue_full = 0
        self._lost_reported = 0
        self.committed = asyncio.Event()  # set after each commit; the shipper waits on it
        self.last_commit = time.monotonic()
        self.failure: BaseException | None = None
        self.failed = asyncio.Event()
        # Shown each committed draft (e.g. operator notifications); one failing never stops the others.
        self.observers: list[Callable[[Draft], None]] = []

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a spool method on the writer thread (SQLite connection affinity)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def call_soon(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue a spool call now, in order with every later call, without waiting for it."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> list[Body]:
        recovered = await self.call(self.spool.open)
        self._task = asyncio.create_task(self._run(), name="spool-writer")
        return recovered

    def submit(self, draft: Draft) -> asyncio.Future[Body]:
        """Queue a draft; the future resolves with the sealed body once committed. Raises QueueFull."""
        if self.failure is not None:
            raise PersistenceError(f"spool failed: {self.failure}")
        if len(self._items) >= self.queue_max:
            raise QueueFull
        fut: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        self._items.append((draft, fut))
        self._wake.set()
        return fut

    def submit_many(self, drafts: list[Draft]) -> asyncio.Future[Body]:
        """Queue a burst behind one future, resolved with the last body once all are committed.

        Commits happen in queue order, so the last one committed means all are. Raises QueueFull.
        """
        if self.failure is not None:
            raise PersistenceError(f"spool failed: {self.failure}")
        if len(self._items) + len(drafts) > self.queue_max or not drafts:
            raise QueueFull
        fut: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        self._items.extend(zip(drafts, repeat(None, len(drafts) - 1), strict=False))  # all but the last
        self._items.append((drafts[-1], fut))
        self._wake.set()
        return fut

    async def emit(self, draft: Draft) -> Body:
        while True:
            try:
                return await self.submit(draft)
            except QueueFull:
                self._space.clear()
                await self._space.wait()

    def try_emit(self, draft: Draft) -> bool:
        if len(self._items) >= self.queue_max:
            self.lost_queue_full += 1
            return False
        self._items.append((draft, None))
        self._wake.set()
        return True

    @property
    def queued(self) -> int:
        return len(self._items)

    async def _run(self) -> None:
        while True:
            if not self._items:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                self._idle.clear()
            # Bursts of thousands pass here: per-event work stays in C (list, map, compress).
            if len(self._items) <= self.max_batch:
                items = list(self._items)
                self._items.clear()
            else:
                items = [self._items.popleft() for _ in range(self.max_batch)]
            self._space.set()
            drafts = list(map(_draft, items))
            lost = self.lost_queue_full - self._lost_reported
            if lost:
                drafts.append(Draft("spool.gap", "high", {"reason": "queue_full", "count": lost}))
            try:
                committed = await self.call(self.spool.append_batch, drafts)
            except BaseException as exc:
                self._fail(exc, items)
                return
            self._lost_reported += lost
            self.last_commit = time.monotonic()
            waiting = list(compress(range(len(items)), map(_future, items)))
            if waiting:
                # Recovery and loss notes may precede the drafts in the commit.
                offset = next(i for i, d in enumerate(committed.drafts) if d is items[0][0])
                for i in waiting:
                    fut = items[i][1]
                    if fut is not None and not fut.done():
                        fut.set_result(committed[offset + i].body)
            self.committed.set()
            if self.observers:
                for draft in committed.drafts:
                    self._show(draft)

    def _show(self, draft: Draft) -> None:
        for observer in self.observers:
            try:
                observer(draft)
            except Exception:
                _log.exception("spool_observer_failed", type=draft.type)

    def fail(self, exc: BaseException) -> None:
        """A spool operation outside the writer loop failed: the agent must stop (persistence failure)."""
        self._fail(exc, [])

    def _fail(self, exc: BaseException, items: list[_Item]) -> None:
        self.failure = exc
        _log.critical("spool_write_failed", error=str(exc))
        for _, fut in [*items, *self._items]:
            if fut is not None and not fut.done():
                fut.set_exception(PersistenceError(f"spool write failed: {exc}"))
        self.failed.set()

    async def ping(self) -> None:
        """Prove the writer thread is responsive (for the systemd watchdog)."""
        await self.call(lambda: None)

    async def stop(self) -> None:
        """Commit what is queued, then close the spool."""
        if self._task is not None:
            if self.failure is None and self._items:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drained(), timeout=5)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.call(self.spool.close)
        self._executor.shutdown(wait=True)

    async def _drained(self) -> None:
        while self._items or not self._idle.is_set():
            self._idle.clear()
            await self._idle.wait()
