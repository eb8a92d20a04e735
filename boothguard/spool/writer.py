"""One writer thread owns the spool; asyncio callers queue drafts and are answered after the group commit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from boothguard import log
from boothguard.errors import PersistenceError
from boothguard.events import SEVERITY_RANK, Draft
from boothguard.spool.spool import URGENT_RANK, Spool

_log = log.get("spool.writer")
T = TypeVar("T")
_Item = tuple[Draft, "asyncio.Future[dict[str, Any]] | None"]


class SpoolWriter:
    """Bounded queue → group commit. `emit` waits (backpressure); `try_emit` counts what it cannot queue."""

    def __init__(self, spool: Spool, *, queue_max: int = 10_000, max_batch: int = 2_000) -> None:
        self.spool = spool
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=queue_max)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._task: asyncio.Task[None] | None = None
        self.lost_queue_full = 0
        self._lost_reported = 0
        self.committed = asyncio.Event()  # set after each commit; the shipper waits on it
        self.urgent_committed = False
        self.last_commit = time.monotonic()
        self.failure: BaseException | None = None
        self.failed = asyncio.Event()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a spool method on the writer thread (SQLite connection affinity)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> list[dict[str, Any]]:
        recovered = await self.call(self.spool.open)
        self._task = asyncio.create_task(self._run(), name="spool-writer")
        return recovered

    async def emit(self, draft: Draft) -> dict[str, Any]:
        if self.failure is not None:
            raise PersistenceError(f"spool failed: {self.failure}")
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        await self._queue.put((draft, fut))
        return await fut

    def try_emit(self, draft: Draft) -> bool:
        try:
            self._queue.put_nowait((draft, None))
        except asyncio.QueueFull:
            self.lost_queue_full += 1
            return False
        return True

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            while len(items) < self.max_batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            drafts = [d for d, _ in items]
            lost = self.lost_queue_full - self._lost_reported
            if lost:
                drafts.append(Draft("spool.gap", "high", {"reason": "queue_full", "count": lost}))
            try:
                bodies = await self.call(self.spool.append_batch, drafts)
            except BaseException as exc:
                self._fail(exc, items)
                return
            self._lost_reported += lost
            for _ in items:
                self._queue.task_done()
            self.last_commit = time.monotonic()
            sealed = {id(draft): body for draft, body in bodies}
            for draft, fut in items:
                if fut is not None and not fut.done():
                    fut.set_result(sealed[id(draft)])
            if any(SEVERITY_RANK[b["severity"]] >= URGENT_RANK for _, b in bodies):
                self.urgent_committed = True
            self.committed.set()

    def _fail(self, exc: BaseException, items: list[_Item]) -> None:
        self.failure = exc
        _log.critical("spool_write_failed", error=str(exc))
        for _, fut in items:
            if fut is not None and not fut.done():
                fut.set_exception(PersistenceError(f"spool write failed: {exc}"))
        self.failed.set()

    async def ping(self) -> None:
        """Prove the writer thread is responsive (for the systemd watchdog)."""
        await self.call(lambda: None)

    async def stop(self) -> None:
        """Commit what is queued, then close the spool."""
        if self._task is not None:
            if self.failure is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._queue.join(), timeout=5)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.call(self.spool.close)
        self._executor.shutdown(wait=True)
