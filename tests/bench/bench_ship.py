"""Spool → receiver drain rate ÷ raw httpx POSTs of the same gzipped batches to the same receiver.

.venv/bin/python -m tests.bench.bench_ship [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from boothguard.events import AgentRef, Draft, HostRef
from boothguard.ship.http import HttpSink
from boothguard.ship.settings import ShipSection
from boothguard.ship.shipper import Shipper
from boothguard.spool.spool import Spool
from boothguard.spool.writer import SpoolWriter

HOST = HostRef(id="0123456789abcdef0123456789abcdef", name="booth-bench")
DATA = {"app": "crm.exe", "formats": ["UTF8_STRING", "TARGETS"], "size": 120, "pii": {"phone_jp": 1}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real collector behind uvicorn
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = gzip.decompress(self.rfile.read(int(self.headers["Content-Length"])))
        n = raw.count(b"\n")
        body = json.dumps({"accepted": n, "duplicates": 0, "rejected": [], "commands": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def fill(writer: SpoolWriter, n: int) -> None:
    for i in range(0, n, 1000):
        await writer.submit_many([Draft("clipboard.copy", "medium", DATA) for _ in range(min(1000, n - i))])


async def drain(url: str, tmp: Path, n: int) -> tuple[float, list[bytes]]:
    token = tmp / "token"
    token.write_text("bench")
    writer = SpoolWriter(
        Spool(tmp / "spool.db", host=HOST, agent=AgentRef(version="b"), max_bytes=1 << 34, reserve_bytes=0),
        queue_max=2000,
    )
    await writer.start()
    await fill(writer, n)
    everything = await writer.call(writer.spool.read, n, 1 << 40)
    assert everything is not None
    batches = [gzip.compress(b"\n".join(chunk) + b"\n", 1) for chunk in _chunks(everything.bodies(), 500)]
    settings = ShipSection(collector_url=url)
    shipper = Shipper(writer, HttpSink(settings, token), settings)
    start = time.perf_counter()
    task = asyncio.create_task(shipper.run())
    while shipper.stats.shipped < n:  # in-memory: polling the spool would compete with the shipper
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await shipper.sink.close()
    await writer.stop()
    return n / elapsed, batches


def _chunks(rows: list[Any], size: int) -> list[list[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


async def raw_posts(url: str, batches: list[bytes], n: int) -> float:
    headers = {
        "Authorization": "Bearer bench",
        "Content-Type": "application/x-ndjson",
        "Content-Encoding": "gzip",
    }
    async with httpx.AsyncClient() as client:
        start = time.perf_counter()
        for body in batches:
            (await client.post(url + "/v1/events", content=body, headers=headers)).raise_for_status()
        return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    ours, batches = asyncio.run(drain(url, Path(tempfile.mkdtemp(prefix="bg-ship-")), args.events))
    raw = asyncio.run(raw_posts(url, batches, args.events))
    server.shutdown()
    print(
        json.dumps(
            {
                "benchmark": "ship_drain",
                "events": args.events,
                "batch_events": 500,
                "raw_httpx_post_events_per_s": round(raw),
                "drain_events_per_s": round(ours),
                "ratio": round(ours / raw, 3),
                "target_ratio": 0.7,
                "target_events_per_s": 10_000,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
