"""Dispatcher: alerts → one bounded queue and one worker per channel, with retries and counted losses.

`submit` never blocks and never waits on a channel: it appends to each named channel's queue (from the event
loop or from any other thread) and returns False when a queue was full (the loss is counted). A dead or
hanging channel only fills its own queue; the others and ingest go on.
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from boothguard import log
from boothguard.collector.alerts.channels.base import Channel, ChannelError, build_channel
from boothguard.collector.alerts.model import Alert
from boothguard.collector.alerts.settings import AlertsSection
from boothguard.events import SEVERITY_RANK

_log = log.get("boothguard.collector.alerts")
COUNTERS = ("submitted", "sent", "failed", "dropped", "retries", "filtered", "abandoned")


@dataclass
class _Lane:
    name: str
    channel: Channel
    min_rank: int
    timeout: float
    limit: int
    items: collections.deque[Alert] = field(default_factory=collections.deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    busy: bool = False
    last_error: str = ""

    def offer(self, alert: Alert) -> bool:
        with self.lock:
            if len(self.items) >= self.limit:
                self.counts["dropped"] += 1
                return False
            self.items.append(alert)
            self.counts["submitted"] += 1
            return True

    def take(self) -> Alert | None:
        with self.lock:
            if not self.items:
                return None
            self.busy = True
            return self.items.popleft()

    def depth(self) -> int:
        with self.lock:
            return len(self.items) + (1 if self.busy else 0)


class Dispatcher:
    def __init__(
        self,
        section: AlertsSection,
        *,
        clock: Callable[[], float] = time.monotonic,
        channels: Mapping[str, Channel] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """`channels` replaces the ones built from `section.channels` (same names)."""
        self._section = section
        self._clock = clock
        self._rng = rng
        built = (
            dict(channels)
            if channels is not None
            else {name: build_channel(name, spec) for name, spec in section.channels.items()}
        )
        self._lanes: dict[str, _Lane] = {}
        for name, channel in built.items():
            spec = section.channels.get(name)
            self._lanes[name] = _Lane(
                name=name,
                channel=channel,
                min_rank=SEVERITY_RANK[spec.min_severity] if spec else 0,
                timeout=spec.timeout_seconds if spec else 10.0,
                limit=section.queue_size,
            )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._closed = False
        self.unknown_channel = 0
        self.delivered: Callable[[str, Alert, float], None] | None = None  # hook: (channel, alert, seconds)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for lane in self._lanes.values():
            lane.wake, lane.idle = asyncio.Event(), asyncio.Event()
            if lane.depth():
                lane.wake.set()
            else:
                lane.idle.set()
            self._workers.append(asyncio.create_task(self._work(lane), name=f"alerts-{lane.name}"))
        _log.info("alerts_dispatcher_started", channels=sorted(self._lanes))

    async def stop(self, drain_seconds: float = 5.0) -> None:
        """Stop accepting, give the queues `drain_seconds` to empty, then cancel and close the channels."""
        self._closed = True
        if self._workers:
            idle = asyncio.gather(*(lane.idle.wait() for lane in self._lanes.values()))
            try:
                await asyncio.wait_for(idle, drain_seconds)
            except TimeoutError:
                queued = {n: lane.depth() for n, lane in self._lanes.items()}
                _log.warning("alerts_drain_timeout", queued=queued)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        for lane in self._lanes.values():
            with lane.lock:
                lane.counts["abandoned"] += len(lane.items)
                lane.items.clear()
                lane.busy = False
            try:
                await lane.channel.close()
            except Exception as exc:  # a broken channel must not stop the others from closing
                _log.warning("alerts_channel_close_failed", channel=lane.name, error=str(exc))
        _log.info("alerts_dispatcher_stopped", stats=self.stats())

    def submit(self, alert: Alert) -> bool:
        """Queue the alert on each of its channels; False if stopped or a queue was full (counted)."""
        if self._closed:
            return False
        ok = True
        for name in alert.channels:
            lane = self._lanes.get(name)
            if lane is None:
                self.unknown_channel += 1
                _log.warning("alerts_unknown_channel", channel=name, rule=alert.rule)
                ok = False
                continue
            if SEVERITY_RANK.get(alert.severity, 0) < lane.min_rank:
                with lane.lock:
                    lane.counts["filtered"] += 1
                continue
            if not lane.offer(alert):
                _log.warning("alerts_queue_full", channel=name, alert_id=alert.id, rule=alert.rule)
                ok = False
                continue
            self._wake(lane)
        return ok

    def stats(self) -> dict[str, dict[str, int]]:
        """Per channel: submitted, sent, failed (gave up), dropped (queue full), retries, filtered
        (below the channel's min_severity), abandoned (left at stop) and queued (current depth)."""
        out = {}
        for name, lane in self._lanes.items():
            with lane.lock:
                counts = dict(lane.counts)
            counts["queued"] = lane.depth()
            out[name] = counts
        return out

    def _wake(self, lane: _Lane) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not started yet: start() wakes lanes that have items
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._kick(lane)
        else:
            loop.call_soon_threadsafe(self._kick, lane)

    @staticmethod
    def _kick(lane: _Lane) -> None:
        lane.idle.clear()
        lane.wake.set()

    async def _work(self, lane: _Lane) -> None:
        while True:
            alert = lane.take()
            if alert is None:
                lane.wake.clear()
                if lane.depth():
                    continue
                lane.idle.set()
                await lane.wake.wait()
                continue
            try:
                await self._deliver(lane, alert)
            except asyncio.CancelledError:
                with lane.lock:
                    lane.counts["abandoned"] += 1
                raise
            finally:
                with lane.lock:
                    lane.busy = False

    async def _deliver(self, lane: _Lane, alert: Alert) -> None:
        section = self._section
        started = self._clock()
        for attempt in range(1, section.retry_max_attempts + 1):
            try:
                async with asyncio.timeout(lane.timeout):
                    await lane.channel.send(alert)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any channel failure is isolated to its lane and retried
                reason = str(exc) or type(exc).__name__
                lane.last_error = reason
                permanent = isinstance(exc, ChannelError) and exc.permanent
                if permanent or attempt == section.retry_max_attempts:
                    with lane.lock:
                        lane.counts["failed"] += 1
                    _log.error(
                        "alerts_notify_failed",
                        channel=lane.name,
                        alert_id=alert.id,
                        rule=alert.rule,
                        attempts=attempt,
                        error=reason,
                    )
                    return
                delay = min(section.retry_initial_seconds * 2 ** (attempt - 1), section.retry_max_seconds)
                delay *= 0.5 + self._rng() / 2  # jitter: channels recovering are not hit in lockstep
                if isinstance(exc, ChannelError) and exc.retry_after is not None:
                    delay = min(max(delay, exc.retry_after), section.retry_max_seconds)
                with lane.lock:
                    lane.counts["retries"] += 1
                _log.warning(
                    "alerts_notify_retry",
                    channel=lane.name,
                    alert_id=alert.id,
                    attempt=attempt,
                    delay=round(delay, 3),
                    error=reason,
                )
                await asyncio.sleep(delay)
            else:
                with lane.lock:
                    lane.counts["sent"] += 1
                if self.delivered is not None:
                    self.delivered(lane.name, alert, self._clock() - started)
                _log.info("alerts_notified", channel=lane.name, alert_id=alert.id, rule=alert.rule)
                return
