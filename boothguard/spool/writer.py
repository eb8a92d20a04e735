"""One writer thread owns the spool; asyncio callers queue drafts and are answered after the group commit.

Under a burst, the next group is sealed (pure Python, on a sealer thread) while the current one's COMMIT
waits for its fsync with the GIL released. Sealing starts only once the commit has nothing left to seal
(a loss report for a full spool is sealed inside the commit), and a failed commit takes the group sealed
ahead of it back: both are sealed again from the last commit (`Spool.rewind`) and written with the
spool's own disk-full retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import compress, repeat
from operator import itemgetter
from typing import Any, TypeVar

from boothguard import log
from boothguard.errors import PersistenceError
from boothguard.events import Draft, RefusedDraft, SealedBatch
from boothguard.spool.spool import Sealing, Spool

_log = log.get("spool.writer")
T = TypeVar("T")
Body = dict[str, Any]
_Item = tuple[Draft, "asyncio.Future[Body] | None"]
_draft, _future = itemgetter(0), itemgetter(1)


@dataclass
class _Burst:
    items: list[_Item]
    drafts: list[Draft]  # the items' drafts, and a queue-full loss report if one is due
    sealed: asyncio.Future[Sealing] | None = None  # sealed ahead, on the sealer thread


def _is_sealed_as(sealed: Draft, draft: Draft) -> bool:
    return sealed is draft or (isinstance(sealed, RefusedDraft) and sealed.original is draft)


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
        self._sealer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="spool-seal"
        )  # started by a burst
        self._gate = threading.Event()  # set: nothing more to seal in the commit in flight
        self._gate.set()
        self._task: asyncio.Task[None] | None = None
        self._ahead: _Burst | None = None  # taken and sealing while the commit before it is in flight
        # Every event lost before the spool, by reason; each is declared by a `spool.gap` (see `record_lost`).
        self.lost: dict[str, int] = {}
        self._lost_taken: dict[str, int] = {}
        self.sealed_ahead = 0  # bursts sealed while the commit before them was in flight
        self.recommits = 0  # failed commits whose bursts were sealed again and written by the retry path
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

    @property
    def lost_queue_full(self) -> int:
        return self.lost.get("queue_full", 0)

    def record_lost(self, reason: str, count: int = 1) -> None:
        """The one way to lose an event: counted here (heartbeat, status) and declared by a `spool.gap`
        with this reason, written with the next group commit."""
        self.lost[reason] = self.lost.get(reason, 0) + count
        self._wake.set()

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
                return await self.submit(draft)  # once submitted, a cancelled caller's draft is still written
            except QueueFull:
                self._space.clear()
                try:
                    await self._space.wait()
                except asyncio.CancelledError:
                    self.record_lost("emit_cancelled")  # e.g. a plugin drain stopped while we were full
                    raise

    def try_emit(self, draft: Draft) -> bool:
        if len(self._items) >= self.queue_max:
            self.record_lost("queue_full")
            return False
        self._items.append((draft, None))
        self._wake.set()
        return True

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The writer loop (for the agent's supervisor)."""
        return self._task

    @property
    def queued(self) -> int:
        return len(self._items)

    async def _run(self) -> None:
        self._ahead = None
        while True:
            if self._ahead is None:
                if not self._items and not self._losses_pending():  # a loss recorded mid-commit too
                    self._idle.set()
                    self._wake.clear()
                    await self._wake.wait()
                    self._idle.clear()
                burst = self._take()
                if not burst.drafts:
                    continue
            else:
                burst, self._ahead = self._ahead, None
            self._gate = gate = threading.Event()
            sealings: list[Sealing] = []  # what the commit sealed, for a rewind
            commit = asyncio.ensure_future(self._commit(burst, gate, sealings))
            if self._items:
                self._ahead = self._take()
                loop = asyncio.get_running_loop()
                self._ahead.sealed = loop.run_in_executor(
                    self._sealer, self._seal_when_open, gate, self._ahead.drafts
                )
                self.sealed_ahead += 1
            done = [burst] if self._ahead is None else [burst, self._ahead]
            try:
                # Shielded: stop() cancelling the loop must not cancel a commit the spool thread is running
                # (a cancelled await looked like a failed commit and sent the loop into a recommit, after
                # which it waited for new work forever and the agent never stopped).
                committed = await asyncio.shield(commit)
                done = [burst]
            except asyncio.CancelledError:
                await self._finish_commit_then_stop(commit, burst)
                raise
            except BaseException:
                gate.set()
                self._ahead = None
                recommitted = await self._recommit(done, sealings)
                if recommitted is None:
                    return
                committed = recommitted
            self.last_commit = time.monotonic()
            self._answer(done, committed)
            self.committed.set()
            if self.observers:
                for draft in committed.drafts:
                    self._show(draft)

    async def _finish_commit_then_stop(self, commit: asyncio.Future[SealedBatch], burst: _Burst) -> None:
        """Cancelled mid-commit (stop): wait for that commit and answer its callers, then commit the burst
        sealed ahead of it too — taken off the queue, it is no longer what stop() counts as left over."""
        ahead, self._ahead = self._ahead, None
        self._gate.set()
        try:
            self._answer([burst], await commit)
        except BaseException as exc:  # a commit failing now is a persistence failure, as anywhere else
            self._fail(exc, [*burst.items, *(ahead.items if ahead else [])])
            return
        if ahead is not None and ahead.sealed is not None:
            try:
                sealing = await ahead.sealed
                self._answer([ahead], await self.call(self.spool.commit, sealing))
            except BaseException as exc:
                self._fail(exc, ahead.items)

    def _losses_pending(self) -> bool:
        return any(count != self._lost_taken.get(reason, 0) for reason, count in self.lost.items())

    def _take(self) -> _Burst:
        # Bursts of thousands pass here: per-event work stays in C (list, map, compress).
        if len(self._items) <= self.max_batch:
            items = list(self._items)
            self._items.clear()
        else:
            items = [self._items.popleft() for _ in range(self.max_batch)]
        self._space.set()
        drafts = list(map(_draft, items))
        for reason, count in self.lost.items():
            pending = count - self._lost_taken.get(reason, 0)
            if pending:
                drafts.append(Draft("spool.gap", "high", {"reason": reason, "count": pending}))
                self._lost_taken[reason] = count
        return _Burst(items, drafts)

    async def _commit(self, burst: _Burst, gate: threading.Event, sealings: list[Sealing]) -> SealedBatch:
        if burst.sealed is None:
            return await self.call(self._seal_and_commit, burst.drafts, gate.set, sealings)
        try:
            sealings.append(await burst.sealed)
        except BaseException:
            gate.set()
            raise
        return await self.call(self.spool.commit, sealings[0], gate.set)

    def _seal_and_commit(
        self, drafts: list[Draft], before_commit: Callable[[], None], sealings: list[Sealing]
    ) -> SealedBatch:
        try:
            sealings.append(self.spool.seal(drafts))
        except BaseException:
            before_commit()  # a failed seal must not leave a sealer waiting
            raise
        return self.spool.commit(sealings[0], before_commit)

    def _seal_when_open(self, gate: threading.Event, drafts: list[Draft]) -> Sealing:
        gate.wait()
        return self.spool.seal(drafts)

    async def _recommit(self, bursts: list[_Burst], sealings: list[Sealing]) -> SealedBatch | None:
        """A commit failed: nothing from its burst on is stored. Seal it all again and write it with the
        spool's retries; None when that fails too (the writer has failed)."""
        for burst in bursts[1:]:
            if burst.sealed is not None:
                with contextlib.suppress(Exception):
                    sealings.append(await burst.sealed)
        items = [item for burst in bursts for item in burst.items]
        self.recommits += 1
        _log.warning("spool_recommit", bursts=len(bursts), events=len(items))
        try:
            await self.call(self.spool.rewind, sealings)
            return await self.call(self.spool.append_batch, [d for burst in bursts for d in burst.drafts])
        except BaseException as exc:
            self._fail(exc, items)
            return None

    @staticmethod
    def _answer(bursts: list[_Burst], committed: SealedBatch) -> None:
        position = 0
        for burst in bursts:
            if not burst.items:
                continue
            first = burst.items[0][0]
            # Recovery and loss notes come in between; a draft refused at seal is there as its report.
            while not _is_sealed_as(committed.drafts[position], first):
                position += 1
            for i in compress(range(len(burst.items)), map(_future, burst.items)):
                fut = burst.items[i][1]
                if fut is not None and not fut.done():
                    fut.set_result(committed[position + i].body)
            position += len(burst.items)

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

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Commit what is queued within `drain_timeout`; what is still queued then is not written and is
        declared (`spool.gap` `reason: stop_drain_timeout`) by a last commit, bounded the same; close."""
        if self._task is not None:
            if self.failure is None and self._items:
                try:
                    await asyncio.wait_for(self._drained(), timeout=drain_timeout)
                except TimeoutError:
                    self._give_up_queued()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._drained(), timeout=drain_timeout)
            self._task.cancel()
            self._gate.set()  # a sealer waiting on a commit that will not come
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.call(self.spool.close)
        self._executor.shutdown(wait=True)
        self._sealer.shutdown(wait=True)

    def _give_up_queued(self) -> None:
        # Only what no burst has taken: those drafts can no longer be written by any path (a cancelled
        # commit's retry writes its own bursts, which are not counted here), so the count is exact.
        items = list(self._items)
        self._items.clear()
        self._space.set()
        for _, fut in items:
            if fut is not None and not fut.done():
                fut.cancel()
        if items:
            _log.warning("spool_stop_drain_timeout", dropped=len(items))
            self.record_lost("stop_drain_timeout", len(items))

    async def _drained(self) -> None:
        while self._items or not self._idle.is_set():
            self._idle.clear()
            await self._idle.wait()
