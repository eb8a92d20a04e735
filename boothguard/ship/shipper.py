"""Spool → sink: batching, full-jitter backoff with no retry or time limit, acks, splits, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from boothguard import log
from boothguard.events import Draft
from boothguard.ship.settings import ShipSection
from boothguard.ship.sink import Accepted, Batch, Retry, Sink, Split
from boothguard.spool.outbox import Chunk
from boothguard.spool.writer import SpoolWriter

_log = log.get("ship")
CommandHandler = Callable[[list[dict[str, Any]]], Awaitable[None]]
PolicyHandler = Callable[[dict[str, Any]], Awaitable[None]]
MAX_RETRY_AFTER = 24 * 3600.0


@dataclass
class ShipStats:
    shipped: int = 0
    batches: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    failures: int = 0  # consecutive
    last_success: float | None = None
    last_error: str | None = None
    next_delay: float = 0.0


class Shipper:
    def __init__(
        self,
        writer: SpoolWriter,
        sink: Sink,
        settings: ShipSection,
        *,
        on_commands: CommandHandler | None = None,
        on_policy: PolicyHandler | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer, self.sink, self.settings = writer, sink, settings
        self.on_commands = on_commands
        self.on_policy = on_policy
        self.sleep, self.rand, self.wall, self.monotonic = sleep, rand, wall, monotonic
        self.stats = ShipStats()
        self.send_started: float | None = None
        self._attempt = 0

    @property
    def stuck(self) -> bool:
        """A send taking far longer than its timeout means the shipper makes no progress."""
        started = self.send_started
        return started is not None and self.monotonic() - started > 3 * self.settings.timeout

    async def run(self) -> None:
        ready: Batch | None = None
        while True:
            if ready is None:
                ready = await self._prepare(await self._next_batch())
            # With a backlog, read and encode the next batch while this one is on the wire.
            full = self._full(len(ready.seqs), len(ready.ndjson))
            ahead = asyncio.create_task(self._prefetch(ready.seqs[-1])) if full else None
            ok = await self._deliver(ready)
            ready = None
            if ahead is not None:
                if ok:
                    ready = await ahead
                else:
                    ahead.cancel()
                    await asyncio.gather(ahead, return_exceptions=True)
            if ok:
                self._attempt = 0
                self.stats.failures = 0
                self.stats.next_delay = 0.0
            else:
                await self._backoff()

    async def _prepare(self, chunk: Chunk) -> Batch:
        return await self.writer.call(self._encoded, chunk)

    def _encoded(self, chunk: Chunk) -> Batch:
        return Batch(chunk.seqs, chunk.ndjson, self.sink.encode(chunk.ndjson))

    async def _prefetch(self, after_seq: int) -> Batch | None:
        # One trip to the writer thread: read and gzip there.
        return await self.writer.call(self._read_full, after_seq)

    def _read_full(self, after_seq: int) -> Batch | None:
        s = self.settings
        chunk = self.writer.spool.read(s.batch_max_events, s.batch_max_bytes, after_seq)
        if chunk is None or not self._full_chunk(chunk):  # not full: the normal path waits for more first
            return None
        return self._encoded(chunk)

    async def _next_batch(self) -> Chunk:
        s = self.settings
        while True:
            self.writer.committed.clear()
            chunk = await self.writer.call(self.writer.spool.read, s.batch_max_events, s.batch_max_bytes)
            if chunk is not None and self._full_chunk(chunk):
                return chunk
            if chunk is not None:
                wait = self._deadline(chunk) - self.wall()
                if wait <= 0:
                    return chunk
            else:
                wait = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.writer.committed.wait(), wait)

    def _full_chunk(self, chunk: Chunk) -> bool:
        return self._full(len(chunk.seqs), len(chunk.ndjson))

    def _full(self, count: int, size: int) -> bool:
        s = self.settings
        return count >= s.batch_max_events or size >= s.batch_max_bytes * 0.9

    def _deadline(self, chunk: Chunk) -> float:
        s = self.settings
        deadline = chunk.oldest_created + s.batch_max_wait
        if chunk.urgent_created is not None:
            deadline = min(deadline, chunk.urgent_created + s.urgent_max_wait)
        return deadline

    async def _deliver(self, batch: Batch) -> bool:
        """True when every event was acknowledged or dead-lettered; False to back off and retry."""
        self.send_started = self.monotonic()
        try:
            outcome = await self.sink.send(batch)
        finally:
            self.send_started = None
        if isinstance(outcome, Accepted):
            await self._accepted(batch, outcome)
            return True
        if isinstance(outcome, Split):
            if len(batch.seqs) == 1:
                await self._dead_letter([(batch.seqs[0], f"refused alone: {outcome.reason}")])
                return True
            _log.info("ship_split", size=len(batch.seqs), reason=outcome.reason)
            first, second = batch.halves()
            return await self._deliver(first) and await self._deliver(second)
        assert isinstance(outcome, Retry)
        self._failed(outcome)
        return False

    async def _accepted(self, batch: Batch, outcome: Accepted) -> None:
        answer = outcome.answer
        seqs = batch.seqs
        rejected = {r.index: r.error for r in answer.rejected if 0 <= r.index < len(seqs)}
        if rejected:
            await self._dead_letter([(seqs[i], err) for i, err in sorted(rejected.items())])
        # Queued, not awaited: the writer thread runs calls in order, so any later read of the spool
        # sees the ack, and the next batch goes on the wire meanwhile. A failure stops the agent.
        acked = [seq for i, seq in enumerate(seqs) if i not in rejected]
        self.writer.call_soon(self.writer.spool.ack, acked).add_done_callback(self._ack_done)
        self.stats.shipped += len(seqs) - len(rejected)
        self.stats.batches += 1
        self.stats.duplicates += answer.duplicates
        self.stats.last_success = self.wall()
        if answer.commands and self.on_commands is not None:
            try:
                await self.on_commands(answer.commands)
            except Exception:  # a command handler's bug must not stop shipping
                _log.exception("ship_command_handler_failed")
        if answer.policy is not None and self.on_policy is not None:
            try:
                await self.on_policy(answer.policy)
            except Exception:  # as for commands: never stop shipping
                _log.exception("ship_policy_handler_failed")

    def _ack_done(self, fut: asyncio.Future[None]) -> None:
        if not fut.cancelled() and (exc := fut.exception()) is not None:
            _log.critical("ship_ack_failed", error=str(exc))
            self.writer.fail(exc)

    async def _dead_letter(self, items: list[tuple[int, str]]) -> None:
        await self.writer.call(self.writer.spool.dead_letter, items)
        self.stats.dead_lettered += len(items)
        _log.error("ship_rejected", count=len(items), seqs=[s for s, _ in items[:20]])
        errors = sorted({e for _, e in items})[:5]
        await self.writer.emit(
            Draft(
                "ship.rejected",
                "high",
                {"count": len(items), "seqs": [s for s, _ in items[:100]], "errors": errors},
            )
        )

    def _failed(self, outcome: Retry) -> None:
        s = self.settings
        self.stats.failures += 1
        self.stats.last_error = outcome.reason
        if outcome.after is not None:
            delay = min(outcome.after, MAX_RETRY_AFTER)
        else:
            ceiling = min(s.backoff_max, s.backoff_min * 2 ** min(self._attempt, 30))
            delay = s.backoff_min + self.rand() * max(0.0, ceiling - s.backoff_min)
        self._attempt += 1
        self.stats.next_delay = delay
        _log.warning("ship_retry", reason=outcome.reason, delay=round(delay, 3), failures=self.stats.failures)

    async def _backoff(self) -> None:
        await self.sleep(self.stats.next_delay)

    def status(self) -> dict[str, Any]:
        st = self.stats
        return {
            "collector_url": self.settings.collector_url,
            "shipped": st.shipped,
            "batches": st.batches,
            "duplicates": st.duplicates,
            "dead_lettered": st.dead_lettered,
            "consecutive_failures": st.failures,
            "last_success": st.last_success,
            "last_error": st.last_error,
            "next_delay": round(st.next_delay, 3),
        }
