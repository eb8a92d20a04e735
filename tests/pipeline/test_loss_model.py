"""Every loss before the spool goes through `SpoolWriter.record_lost`: counted and declared as `spool.gap`."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from boothguard.events import AgentRef, Draft, Event, HostRef
from boothguard.spool.spool import Spool
from boothguard.spool.writer import SpoolWriter
from boothguard.usb import plugin as usb_plugin
from boothguard.usb.plugin import UsbPlugin
from boothguard.usb.settings import UsbSection

HOST = HostRef(id="m1", name="booth-1")
AGENT = AgentRef(version="test")


def stored(path: Path) -> list[Event]:
    spool = Spool(path, host=HOST, agent=AGENT, max_bytes=1 << 30, reserve_bytes=0)
    spool.open()
    try:
        chunk = spool.read(10**6, 1 << 40)
        return [Event.model_validate_json(b) for b in chunk.bodies()] if chunk else []
    finally:
        spool.close()


def gaps(events: list[Event]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        if e.type == "spool.gap" and "reason" in e.data:
            out[e.data["reason"]] = out.get(e.data["reason"], 0) + e.data["count"]
    return out


def writer_at(path: Path, queue_max: int = 10_000) -> SpoolWriter:
    return SpoolWriter(
        Spool(path, host=HOST, agent=AGENT, max_bytes=1 << 30, reserve_bytes=0), queue_max=queue_max
    )


async def committed(writer: SpoolWriter) -> None:
    """Wait until the writer is idle with nothing queued (what was taken is committed)."""
    await writer.ping()
    while writer.queued or not writer._idle.is_set():  # the writer's own idle signal
        await asyncio.sleep(0.01)
    await writer.ping()


async def test_usb_queue_overflow_goes_to_the_writer_and_its_loss_is_declared(tmp_path: Path) -> None:
    writer = writer_at(tmp_path / "spool.db", queue_max=2)
    await writer.start()
    blocker = threading.Event()
    hold = writer.call_soon(blocker.wait)  # the writer thread is busy: its queue fills
    plugin = UsbPlugin(UsbSection())
    plugin._events = writer  # the context's emitter, without a guard
    for i in range(usb_plugin.QUEUE_MAX + 5):  # no drain runs: the plugin's own queue overflows by 5
        plugin._enqueue(Draft("usb.device_blocked", "high", {"i": i}))
    blocker.set()
    await hold
    await committed(writer)
    assert plugin.overflowed == 5
    assert writer.lost == {"queue_full": 3}  # 2 fitted in the writer's queue
    await writer.stop()
    assert gaps(stored(tmp_path / "spool.db")) == {"queue_full": 3}


async def test_an_emit_cancelled_while_the_queue_is_full_is_declared(tmp_path: Path) -> None:
    writer = writer_at(tmp_path / "spool.db", queue_max=1)
    await writer.start()
    blocker = threading.Event()
    hold = writer.call_soon(blocker.wait)
    writer.try_emit(Draft("custom.a", "info", {}))
    await asyncio.sleep(0)
    while writer.queued:
        await asyncio.sleep(0.01)
    writer.try_emit(Draft("custom.b", "info", {}))  # the queue is full again
    waiting = asyncio.create_task(writer.emit(Draft("custom.c", "info", {})))
    await asyncio.sleep(0.05)
    waiting.cancel()  # e.g. a plugin drain stopped
    await asyncio.gather(waiting, return_exceptions=True)
    blocker.set()
    await hold
    await committed(writer)
    await writer.stop()
    assert gaps(stored(tmp_path / "spool.db")) == {"emit_cancelled": 1}


async def test_stop_while_a_commit_waits_returns(tmp_path: Path) -> None:
    """stop() cancelling the writer mid-commit: the cancelled await used to look like a failed commit, the
    loop went into a recommit and then waited for work forever — the agent never stopped on SIGTERM."""
    path = tmp_path / "spool.db"
    writer = writer_at(path)
    await writer.start()
    await writer.emit(Draft("custom.t", "info", {"i": 0}))
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: the next commit waits (busy timeout)
    pending = writer.submit(Draft("custom.t", "info", {"i": 1}))
    async with asyncio.timeout(10):  # taken by the loop and in its commit
        while writer.queued or writer._idle.is_set():
            await asyncio.sleep(0.01)
    assert writer.task is not None
    stopping = asyncio.ensure_future(writer.stop(drain_timeout=0.05))
    async with asyncio.timeout(10):  # stop() has cancelled the loop while the commit still waits
        while not writer.task.cancelling():
            await asyncio.sleep(0.01)
    blocker.rollback()  # now the commit goes through
    blocker.close()
    await asyncio.wait_for(stopping, timeout=30)
    assert (await pending)["seq"] == 2
    assert [e.data.get("i") for e in stored(path) if e.type == "custom.t"] == [0, 1]


async def test_events_still_queued_when_the_stop_drain_runs_out_are_declared(tmp_path: Path) -> None:
    writer = writer_at(tmp_path / "spool.db")
    await writer.start()
    blocker = threading.Event()
    hold = writer.call_soon(blocker.wait)  # a commit that takes longer than the stop drain
    for i in range(3):
        writer.try_emit(Draft("custom.taken", "info", {"i": i}))
    while writer.queued:  # the loop took these three: their commit waits behind the blocker
        await asyncio.sleep(0.01)
    for i in range(4):
        writer.try_emit(Draft("custom.queued", "info", {"i": i}))
    stopping = asyncio.create_task(writer.stop(drain_timeout=0.2))
    try:
        async with asyncio.timeout(20):
            while "stop_drain_timeout" not in writer.lost:
                await asyncio.sleep(0.01)
    finally:
        blocker.set()
    await hold
    await stopping
    events = stored(tmp_path / "spool.db")
    types = [e.type for e in events]
    assert types.count("custom.taken") == 3  # taken before the deadline: written
    assert types.count("custom.queued") == 0
    assert gaps(events) == {"stop_drain_timeout": 4}  # exactly what was not written
