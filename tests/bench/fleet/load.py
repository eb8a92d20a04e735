"""The load loop: every booth ships its due events as the agent's shipper does, one request at a time.

Each booth is one task: events become due on its plan (the spool), whatever is pending goes in one gzipped
NDJSON batch of at most `batch_max` events (the shipper waits at most 1 s, so at two events a minute nearly
every event is its own request), an answer must account for every event sent (`IngestAnswer.miscount`), and
a refused or failed batch stays pending and is retried as the shipper retries it: a full-jitter backoff that
grows with the failures in a row, with `Retry-After` as its floor.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from isal import igzip
from pydantic import ValidationError

from boothguard.wire import IngestAnswer
from tests.bench.fleet.booths import Booth
from tests.bench.fleet.client import post

BACKOFF_MIN, BACKOFF_MAX = 1.0, 300.0  # ShipSection's defaults


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)  # seconds, one per answered request
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)  # miscounts, rejections, unexpected answers
    requests: int = 0
    events_acked: int = 0
    max_in_flight: int = 0
    in_flight: int = 0
    largest_batch: int = 0  # events in the largest acknowledged batch (a reconnecting booth's backlog)


@dataclass
class Load:
    ports: list[int]  # booth.collector indexes this
    seconds: float  # production ends here (run clock)
    drain_seconds: float  # then pending events get this long to be acknowledged
    batch_max: int = 500
    timeout: float = 30.0
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    stats: Stats = field(default_factory=Stats)
    t0: float = 0.0

    def now(self) -> float:
        return self.clock() - self.t0

    async def run(self, fleet: list[Booth]) -> Stats:
        self.t0 = self.clock()
        await asyncio.gather(*(self._booth(b) for b in fleet))
        return self.stats

    async def _booth(self, b: Booth) -> None:
        end = self.seconds + self.drain_seconds
        while True:
            now = self.now()
            stop = b.stop_at
            while b.planned and b.planned[0].due <= now and (stop is None or b.planned[0].due < stop):
                b.pending.append(b.planned.popleft())
            if stop is not None and now >= stop:
                b.planned.clear()
                return  # killed: whatever it still held never leaves the booth
            if now >= end or (not b.planned and not b.pending):
                return
            offline = b.away is not None and b.away[0] <= now < b.away[1]
            if b.pending and not offline:
                wait = await self._ship(b)
                if wait:
                    await asyncio.sleep(wait)
                continue
            wake = b.planned[0].due if b.planned else end
            if offline and b.away is not None:
                wake = min(wake, b.away[1])
            if stop is not None:
                wake = min(wake, stop)
            await asyncio.sleep(max(0.0, min(wake, end) - now))

    async def _ship(self, b: Booth) -> float:
        """Send one batch; 0 when it was acknowledged, else how long to wait before trying again."""
        batch = [b.pending[i] for i in range(min(self.batch_max, len(b.pending)))]
        body = igzip.compress(b"".join(p.raw + b"\n" for p in batch), 1)
        s = self.stats
        s.requests += 1
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        start = self.clock()
        try:
            answer = await post(self.ports[b.collector], "/v1/events", b.token, body, timeout=self.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            s.transport_errors[type(exc).__name__] += 1
            return self._backoff(b)
        finally:
            s.in_flight -= 1
        s.latencies.append(self.clock() - start)
        s.statuses[answer.status] += 1
        if answer.status in (429, 503):
            return self._backoff(b, after=float(answer.headers.get("retry-after", "1")))
        if answer.status != 200:
            s.problems[f"http {answer.status}: {answer.body[:120]!r}"] += 1
            return self._backoff(b)
        try:
            ack = IngestAnswer.model_validate_json(answer.body)
        except ValidationError:
            s.problems["2xx that is not an ingest answer"] += 1
            return self._backoff(b)
        problem = ack.miscount(len(batch)) or (f"rejected: {ack.rejected[0].error}" if ack.rejected else None)
        if problem:
            s.problems[problem[:160]] += 1
            return self._backoff(b)
        for p in batch:
            b.acked[p.seq] = p.raw
            b.pending.popleft()
        s.events_acked += len(batch)
        s.largest_batch = max(s.largest_batch, len(batch))
        b.failures = 0
        b.last_ack = self.now()
        return 0.0

    def _backoff(self, b: Booth, after: float | None = None) -> float:
        """The shipper's delay (`Shipper._failed`, default backoff_min 1 s, backoff_max 300 s): full jitter
        growing with the failures in a row, and a Retry-After taken as a floor spread by up to half again."""
        ceiling = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** min(b.failures, 30))
        delay = BACKOFF_MIN + self.rng.random() * max(0.0, ceiling - BACKOFF_MIN)
        if after is not None:
            delay = min(max(after * (1 + self.rng.random() / 2), delay), BACKOFF_MAX)
        b.failures += 1
        return delay
