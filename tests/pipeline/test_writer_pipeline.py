"""The spool writer under bursts: the next burst sealed during a commit's fsync, taken back if it fails."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from boothguard.events import AgentRef, Draft, Event, HostRef, verify_chain
from boothguard.spool.spool import Spool
from boothguard.spool.writer import SpoolWriter

HOST = HostRef(id="m1", name="booth-1")
AGENT = AgentRef(version="test")


def stored(spool: Spool) -> list[Event]:
    chunk = spool.read(10**6, 1 << 40)
    return [Event.model_validate_json(b) for b in chunk.bodies()] if chunk else []


async def flood(writer: SpoolWriter, bursts: int, size: int, pad: int) -> list[dict[str, object]]:
    """Every burst queued at once, as a source under load does: commits overlap with what follows."""
    futures = [
        writer.submit_many(
            [Draft("custom.burst", "low", {"b": b, "i": i, "pad": "p" * pad}) for i in range(size)]
        )
        for b in range(bursts)
    ]
    return list(await asyncio.gather(*futures))


def fill(path: Path, leave: int) -> None:
    """Take the file system's free space down to about `leave` bytes."""
    stat = os.statvfs(path.parent)
    size = max(0, stat.f_bavail * stat.f_frsize - leave)
    with open(path, "wb") as fh:
        fh.write(b"\0" * size)


async def test_bursts_sealed_ahead_keep_the_chain_and_every_answer(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", host=HOST, agent=AGENT, max_bytes=1 << 30, reserve_bytes=0)
    writer = SpoolWriter(spool, queue_max=10_000, max_batch=100)
    await writer.start()
    lasts = await flood(writer, bursts=30, size=100, pad=50)
    await writer.stop()
    assert writer.sealed_ahead > 0, "no burst was sealed during a commit: the pipeline never ran"
    # Each burst's future answers with its own last event.
    assert [(body["data"]["b"], body["data"]["i"]) for body in lasts] == [(b, 99) for b in range(30)]  # type: ignore[index]
    assert [body["seq"] for body in lasts] == [100 * (b + 1) for b in range(30)]
    spool.open()
    evs = stored(spool)
    assert [e.seq for e in evs] == list(range(1, 3001))
    assert verify_chain(evs) == []
    spool.close()


async def test_a_failed_commit_takes_back_the_burst_sealed_ahead(small_fs: Path) -> None:
    # A real full disk, 1 MiB reserve: releasing it is what lets the retry path get the data in.
    spool = Spool(small_fs / "spool.db", host=HOST, agent=AGENT, max_bytes=1 << 30, reserve_bytes=1 << 20)
    writer = SpoolWriter(spool, queue_max=100_000, max_batch=50)
    await writer.start()
    fill(small_fs / "filler", leave=400_000)  # someone else's file takes the rest of the disk
    lasts = await flood(writer, bursts=20, size=50, pad=400)
    assert writer.failure is None
    assert writer.recommits >= 1, "the disk never filled during a commit"
    assert len(lasts) == 20
    types = [e.type for e in stored(spool)]
    assert "spool.disk_full" in types
    await writer.stop()
    spool.open()
    evs = stored(spool)
    # Whatever was dropped to make room is declared; nothing sealed ahead left a hole or a broken link.
    assert [p for p in verify_chain(evs) if p.kind != "declared_gap"] == []
    seqs = [e.seq for e in evs]
    assert seqs == sorted(seqs)
    # No seq was spent on a sealing that never got stored: every seq is an event kept or one declared dropped.
    dropped = sum(int(e.data["count"]) for e in evs if e.type == "spool.gap" and e.data["reason"] == "full")
    assert seqs[-1] == len(evs) + dropped
    spool.close()


async def test_a_full_spool_declares_its_drops_while_bursts_are_sealed_ahead(tmp_path: Path) -> None:
    # Each commit makes room and seals its loss report; the burst sealed ahead must chain after it.
    spool = Spool(tmp_path / "spool.db", host=HOST, agent=AGENT, max_bytes=120_000, reserve_bytes=0)
    spool.open()
    while spool.stats().bytes < 110_000:  # full already: the very first commit makes room
        spool.append_batch([Draft("custom.old", "info", {"pad": "o" * 300}) for _ in range(10)])
    spool.close()
    writer = SpoolWriter(spool, queue_max=100_000, max_batch=50)
    await writer.start()
    lasts = await flood(writer, bursts=60, size=50, pad=300)
    await writer.stop()
    assert writer.sealed_ahead > 0
    assert len(lasts) == 60
    spool.open()
    evs = stored(spool)
    gaps = [e for e in evs if e.type == "spool.gap"]
    assert gaps
    assert [p for p in verify_chain(evs) if p.kind != "declared_gap"] == []
    dropped = sum(int(e.data["count"]) for e in evs if e.type == "spool.gap" and e.data["reason"] == "full")
    assert [e.seq for e in evs][-1] == len(evs) + dropped
    spool.close()


async def test_a_draft_the_collector_would_refuse_is_sealed_as_its_refusal(tmp_path: Path) -> None:
    """A plugin's or watcher's draft (no `emit` check before it) with NaN, a NUL, a 2**63, 70 KB or a lone
    surrogate: its seq goes to a `spool.refused` report, the chain stays whole, every future answers, nothing
    stops."""
    spool = Spool(tmp_path / "spool.db", host=HOST, agent=AGENT, max_bytes=1 << 30, reserve_bytes=0)
    writer = SpoolWriter(spool, queue_max=10_000, max_batch=100)
    seen: list[str] = []
    writer.observers.append(lambda d: seen.append(d.type))
    await writer.start()
    bad = [
        Draft("usb.device.blocked", "high", {"v": float("nan")}),
        Draft("custom.nul", "low", {"s": "a\x00"}, user="op"),
        Draft("custom.big_int", "info", {"n": [1, 2**63]}),
        Draft("custom.huge", "info", {"blob": "x" * 70_000}),
        Draft("custom.user", "info", {}, user="a\x00b"),
        Draft("custom.bytes", "info", {"b": b"raw"}),
        Draft("custom.surrogate", "info", {"file": "b\udcffd.txt"}),  # a name decoded with surrogateescape
    ]
    # In one burst between good drafts (the first of a burst refused too), and alone.
    first = writer.submit(bad[0])
    burst = [Draft("custom.ok", data={"i": i}) for i in range(3)]
    mixed = await writer.submit_many([burst[0], *bad[1:4], burst[1], *bad[4:], burst[2]])
    alone = await writer.emit(Draft("custom.nul", data={"k": "\x00"}))
    body = await first
    assert body["type"] == "spool.refused"
    assert body["data"] == {
        "type": "usb.device.blocked",
        "severity": "high",
        "problem": "data: Out of range float values are not JSON compliant",
        "bytes": None,
    }
    assert mixed["type"] == "custom.ok"
    assert alone["type"] == "spool.refused"
    await writer.stop()
    spool.open()
    evs = stored(spool)
    spool.close()
    assert [e.seq for e in evs] == list(range(1, 12))
    assert verify_chain(evs) == []
    refused = [e for e in evs if e.type == "spool.refused"]
    assert [e.data["type"] for e in refused] == [
        "usb.device.blocked",
        "custom.nul",
        "custom.big_int",
        "custom.huge",
        "custom.user",
        "custom.bytes",
        "custom.surrogate",
        "custom.nul",
    ]
    assert all(e.severity == "high" and e.user is None for e in refused)
    assert refused[3].data["bytes"] > 70_000
    assert "64-bit" in refused[2].data["problem"]
    assert [e.data["i"] for e in evs if e.type == "custom.ok"] == [0, 1, 2]
    assert spool.refused == 8
    assert seen.count("spool.refused") == 8
