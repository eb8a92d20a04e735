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
from boothguard.spool.spool import URGENT_RANK, Pending
from boothguard.spool.writer import SpoolWriter

_log = log.get("ship")
CommandHandler = Callable[[list[dict[str, Any]]], Awaitable[None]]
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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer, self.sink, self.settings = writer, sink, settings
        self.on_commands = on_commands
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
        while True:
            rows = await self._next_batch()
            if await self._deliver(rows):
                self._attempt = 0
                self.stats.failures = 0
                self.stats.next_delay = 0.0
            else:
                await self._backoff()

    async def _next_batch(self) -> list[Pending]:
        s = self.settings
        while True:
            self.writer.committed.clear()
            rows = await self.writer.call(self.writer.spool.pending, s.batch_max_events, s.batch_max_bytes)
            if rows and self._full(rows):
                return rows
            if rows:
                wait = self._deadline(rows) - self.wall()
                if wait <= 0:
                    return rows
            else:
                wait = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.writer.committed.wait(), wait)

    def _full(self, rows: list[Pending]) -> bool:
        s = self.settings
        size = sum(len(r.body) + 1 for r in rows)
        return len(rows) >= s.batch_max_events or size >= s.batch_max_bytes * 0.9

    def _deadline(self, rows: list[Pending]) -> float:
        s = self.settings
        deadline = rows[0].created + s.batch_max_wait
        urgent = [r.created for r in rows if r.rank >= URGENT_RANK]
        if urgent:
            deadline = min(deadline, min(urgent) + s.urgent_max_wait)
        return deadline

    async def _deliver(self, rows: list[Pending]) -> bool:
        """True when every row was acknowledged or dead-lettered; False to back off and retry."""
        batch = Batch(tuple(r.seq for r in rows), tuple(r.body for r in rows))
        self.send_started = self.monotonic()
        try:
            outcome = await self.sink.send(batch)
        finally:
            self.send_started = None
        if isinstance(outcome, Accepted):
            await self._accepted(rows, outcome)
            return True
        if isinstance(outcome, Split):
            if len(rows) == 1:
                await self._dead_letter([(rows[0].seq, f"refused alone: {outcome.reason}")])
                return True
            _log.info("ship_split", size=len(rows), reason=outcome.reason)
            half = len(rows) // 2
            return await self._deliver(rows[:half]) and await self._deliver(rows[half:])
        assert isinstance(outcome, Retry)
        self._failed(outcome)
        return False

    async def _accepted(self, rows: list[Pending], outcome: Accepted) -> None:
        answer = outcome.answer
        rejected = {r.index: r.error for r in answer.rejected if 0 <= r.index < len(rows)}
        if rejected:
            await self._dead_letter([(rows[i].seq, err) for i, err in sorted(rejected.items())])
        await self.writer.call(
            self.writer.spool.ack, [r.seq for i, r in enumerate(rows) if i not in rejected]
        )
        self.stats.shipped += len(rows) - len(rejected)
        self.stats.batches += 1
        self.stats.duplicates += answer.duplicates
        self.stats.last_success = self.wall()
        if answer.commands and self.on_commands is not None:
            try:
                await self.on_commands(answer.commands)
            except Exception:  # a command handler's bug must not stop shipping
                _log.exception("ship_command_handler_failed")

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
