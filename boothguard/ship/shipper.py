"""Spool → sink: batching, full-jitter backoff with no retry or time limit, checked acks, splits (400/413, and
5xx again and again), dead letters declared to the collector."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from boothguard import log
from boothguard.events import Draft
from boothguard.ship.declare import rejected_gaps
from boothguard.ship.settings import ShipSection
from boothguard.ship.sink import Accepted, Batch, Outcome, Retry, Sink, Split
from boothguard.spool.outbox import Chunk
from boothguard.spool.writer import SpoolWriter
from boothguard.wire import IngestAnswer

_log = log.get("ship")
# Takes the commands of an answer and returns at once: a command (a lock proof takes minutes) must never
# hold the shipping path, which carries its own result.
CommandHandler = Callable[[list[dict[str, Any]]], None]
PolicyHandler = Callable[[dict[str, Any]], Awaitable[None]]
# A batch answered 5xx this many times in a row is bisected: one event the collector fails on must not hold
# every event behind it.
BISECT_AFTER = 3
# A single event is dead-lettered for 5xx only when it failed this many rounds in a row, each with its
# neighbour stored (resent as a duplicate) just after it: once can be bad luck under overload.
SINGLE_OUT_ROUNDS = 3


class Tried(enum.Enum):
    DONE = "done"  # acknowledged or dead-lettered
    SERVER_ERROR = "5xx"
    FAILED = "failed"  # anything else to back off from: transport, 401/403/429, a miscounted answer


@dataclass
class ShipStats:
    shipped: int = 0
    batches: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    failures: int = 0  # consecutive
    answer_mismatches: int = 0
    bisections: int = 0
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
        self._server_errors = 0  # consecutive 5xx answers
        self._mismatch_reported = False  # one ship.answer_mismatch event per streak

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
            progress = self.stats.shipped + self.stats.dead_lettered
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
                if self.stats.shipped + self.stats.dead_lettered > progress:
                    self._attempt = 0  # a bisection got events through: the collector works
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
        """One try; True when every event was acknowledged or dead-lettered, False to back off and retry."""
        if self._server_errors >= BISECT_AFTER and len(batch.seqs) > 1:
            # After the backoff, not instead of it: an outage answers 5xx too.
            self._server_errors = 0
            self.stats.bisections += 1
            done = await self._bisect(batch)
            self._server_errors = 0
            return done
        return await self._try(batch) is Tried.DONE

    async def _send(self, batch: Batch) -> Outcome:
        self.send_started = self.monotonic()
        try:
            return await self.sink.send(batch)
        finally:
            self.send_started = None

    async def _try(self, batch: Batch) -> Tried:
        outcome = await self._send(batch)
        if isinstance(outcome, Accepted):
            problem = outcome.answer.miscount(len(batch.seqs))
            if problem is not None:
                await self._mismatch(batch, outcome.answer, problem)
                return Tried.FAILED
            self._server_errors = 0
            await self._accepted(batch, outcome)
            return Tried.DONE
        if isinstance(outcome, Split):
            self._server_errors = 0
            if len(batch.seqs) == 1:
                await self._dead_letter([(batch.seqs[0], f"refused alone: {outcome.reason}")])
                return Tried.DONE
            _log.info("ship_split", size=len(batch.seqs), reason=outcome.reason)
            first, second = batch.halves()
            return Tried.DONE if await self._deliver(first) and await self._deliver(second) else Tried.FAILED
        assert isinstance(outcome, Retry)
        self._failed(outcome)
        if outcome.server_error:
            self._server_errors += 1
            return Tried.SERVER_ERROR
        self._server_errors = 0
        return Tried.FAILED

    async def _bisect(self, batch: Batch) -> bool:
        """The collector failed on this batch again and again (5xx): find the event it cannot take.

        Each half is tried once. One half stored and the other refused: the collector works, and the refused
        half holds the event — bisect it. Both refused may be an outage, or a bad event in each: look into
        the first half only (two requests a level at most) and back off either way.
        """
        first, second = batch.halves()
        _log.warning("ship_bisect", size=len(batch.seqs), from_seq=batch.seqs[0], to_seq=batch.seqs[-1])
        a = await self._try(first)
        if a is Tried.FAILED:
            return False
        b = await self._try(second)
        if b is Tried.FAILED:
            return False
        if a is Tried.DONE and b is Tried.DONE:
            return True
        if a is not b:
            bad, good = (first, second) if a is Tried.SERVER_ERROR else (second, first)
            if len(bad.seqs) > 1:
                return await self._bisect(bad)
            return await self._single_out(bad, good)
        if len(first.seqs) > 1:
            await self._bisect(first)
        return False

    async def _single_out(self, bad: Batch, good: Batch) -> bool:
        """`bad` (one event) got a 5xx while `good` was stored. Ask again after a pause, each time resending
        `good` (a duplicate to the collector) as proof that the collector works; dead-letter `bad` only when
        it fails every round and `good` passes every round."""
        for _ in range(SINGLE_OUT_ROUNDS - 1):
            await self._backoff()
            tried = await self._try(bad)
            if tried is not Tried.SERVER_ERROR:
                return tried is Tried.DONE
            if not await self._probe(good):
                return False
        seq = bad.seqs[0]
        _log.error("ship_singled_out", seq=seq, rounds=SINGLE_OUT_ROUNDS)
        why = f"collector failed on it alone {SINGLE_OUT_ROUNDS} times (5xx) while its neighbours were stored"
        await self._dead_letter([(seq, why)])
        return True

    async def _probe(self, batch: Batch) -> bool:
        """Resend events already stored: True when the collector answers as it should (all duplicates)."""
        outcome = await self._send(batch)
        return isinstance(outcome, Accepted) and outcome.answer.miscount(len(batch.seqs)) is None

    async def _mismatch(self, batch: Batch, answer: IngestAnswer, problem: str) -> None:
        """A 2xx that does not account for every event: nothing is acknowledged, the batch is sent again."""
        self.stats.answer_mismatches += 1
        counts = {
            "events": len(batch.seqs),
            "accepted": answer.accepted,
            "duplicates": answer.duplicates,
            "rejected": len(answer.rejected),
        }
        self._failed(Retry(f"answer does not account for the batch: {problem}"))
        _log.error("ship_answer_mismatch", problem=problem, from_seq=batch.seqs[0], **counts)
        if not self._mismatch_reported:
            self._mismatch_reported = True
            data = {**counts, "from_seq": batch.seqs[0], "to_seq": batch.seqs[-1], "problem": problem}
            await self.writer.emit(Draft("ship.answer_mismatch", "high", data))

    async def _accepted(self, batch: Batch, outcome: Accepted) -> None:
        answer = outcome.answer
        seqs = batch.seqs
        rejected = {r.index: r.error for r in answer.rejected}  # indexes checked by miscount
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
        self._mismatch_reported = False
        if answer.commands and self.on_commands is not None:
            try:
                self.on_commands(answer.commands)
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
        """Out of the queue (kept in the dead-letter table) and declared: a `spool.gap` per run of seqs, so
        the collector's chain check sees an explained hole, not tampering."""
        await self.writer.call(self.writer.spool.dead_letter, items)
        self.stats.dead_lettered += len(items)
        _log.error("ship_rejected", count=len(items), seqs=[s for s, _ in items[:20]])
        for draft in rejected_gaps(items):
            await self.writer.emit(draft)

    def _failed(self, outcome: Retry) -> None:
        s = self.settings
        self.stats.failures += 1
        self.stats.last_error = outcome.reason
        ceiling = min(s.backoff_max, s.backoff_min * 2 ** min(self._attempt, 30))
        delay = s.backoff_min + self.rand() * max(0.0, ceiling - s.backoff_min)
        if outcome.after is not None:
            # Retry-After is a floor, not an appointment: a fleet turned away with the same "2" would come
            # back every 2 s (measured: offered load x15, live booths marked silent). So it is spread by up
            # to half again and still grows with the backoff; capped, as a Retry-After of a day must not stop
            # shipping for one.
            delay = min(max(outcome.after * (1 + self.rand() / 2), delay), s.backoff_max)
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
            "answer_mismatches": st.answer_mismatches,
            "bisections": st.bisections,
            "consecutive_failures": st.failures,
            "last_success": st.last_success,
            "last_error": st.last_error,
            "next_delay": round(st.next_delay, 3),
        }
