"""Durable enqueue throughput ÷ raw SQLite batched insert (same PRAGMAs, same disk); commit latency p99.

.venv/bin/python -m tests.bench.bench_spool [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from boothguard.events import AgentRef, Draft, HostRef, canonical_json, seal
from boothguard.spool.recovery import SCHEMA
from boothguard.spool.spool import Spool
from boothguard.spool.writer import SpoolWriter

HOST = HostRef(id="0123456789abcdef0123456789abcdef", name="booth-bench")
AGENT = AgentRef(version="bench")
DATA = {"vendor_id": "0781", "product_id": "5581", "product": "Ultra", "rule": "block-storage", "port": "1-2"}


def raw_rows(n: int) -> list[tuple[int, int, bytes, float]]:
    prev, rows = "0" * 64, []
    for seq in range(1, n + 1):
        body = seal(
            Draft("usb.device.blocked", "high", DATA),
            seq=seq,
            prev_hash=prev,
            host=HOST,
            agent=AGENT,
            unix=time.time(),
        )
        prev = body["hash"]
        rows.append((seq, 3, canonical_json(body), time.time()))
    return rows


def raw_insert(path: Path, rows: list[tuple[int, int, bytes, float]], batch: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO events (seq, rank, body, created) VALUES (?, ?, ?, ?)", rows[i : i + batch]
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return len(rows) / elapsed


async def spool_enqueue(path: Path, n: int, burst: int, depth: int) -> tuple[float, int]:
    # Commits of `burst` events, as the raw floor's transactions; the next burst seals while one commits.
    writer = SpoolWriter(
        Spool(path, host=HOST, agent=AGENT, max_bytes=1 << 34, reserve_bytes=0),
        queue_max=burst * depth,
        max_batch=burst,
    )
    await writer.start()
    drafts = [Draft("usb.device.blocked", "high", DATA) for _ in range(burst)]
    start = time.perf_counter()
    in_flight: list[asyncio.Future[dict[str, object]]] = []
    for _ in range(0, n, burst):
        # A source under load keeps the bounded queue busy: `depth` bursts queued or committing.
        in_flight.append(writer.submit_many(drafts))
        if len(in_flight) >= depth:
            await in_flight.pop(0)
    await asyncio.gather(*in_flight)
    elapsed = time.perf_counter() - start
    await writer.stop()
    return n / elapsed, writer.sealed_ahead


async def single_latency(path: Path, n: int) -> list[float]:
    writer = SpoolWriter(Spool(path, host=HOST, agent=AGENT, max_bytes=1 << 34, reserve_bytes=0))
    await writer.start()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await writer.emit(Draft("custom.one", "info", DATA))
        out.append((time.perf_counter() - t) * 1000)
    await writer.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--depth", type=int, default=4, help="bursts a source keeps in flight")
    ap.add_argument("--dir", type=Path, default=None, help="disk to measure on (default: a temp dir)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(dir=args.dir, prefix="bg-bench-"))
    rows = raw_rows(args.events)
    raw = raw_insert(base / "raw.db", rows, args.burst)
    ours, sealed_ahead = asyncio.run(spool_enqueue(base / "spool.db", args.events, args.burst, args.depth))
    lat = asyncio.run(single_latency(base / "lat.db", 300))
    result = {
        "benchmark": "spool_enqueue",
        "events": args.events,
        "burst": args.burst,
        "bursts_in_flight": args.depth,
        "bursts_sealed_during_a_commit": sealed_ahead,
        "raw_sqlite_batched_insert_per_s": round(raw),
        "durable_enqueue_per_s": round(ours),
        "ratio": round(ours / raw, 3),
        "target_ratio": 0.5,
        "single_commit_latency_ms": {
            "p50": round(statistics.median(lat), 3),
            "p99": round(sorted(lat)[int(len(lat) * 0.99) - 1], 3),
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
