"""The real components of a fleet run: PostgreSQL (durable settings), collector processes, the floor server,
and bulk enrollment through the collector's own API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.bench.fleet.booths import Booth
from tests.collector import pg
from tests.collector.proc import CollectorProcess

SECRET = "fleet-enroll-secret"


class DurablePg(pg.PgCluster):
    """tests/collector/pg.py's cluster, but with fsync on: the collector's README requires PostgreSQL's
    durable defaults, so its figures must be measured with them."""

    def start(self) -> DurablePg:
        super().start()
        # fsync is a reload-time setting; the command line's fsync=off is overridden by restarting without it.
        opts = f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._as_postgres(pg._bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-w", "-t", "60",
                          "-l", str(self.dir / "log"), "restart")  # fmt: skip
        return self

    def processes(self) -> list[psutil.Process]:
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        main = psutil.Process(pid)
        return [main, *main.children(recursive=True)]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass  # a PostgreSQL backend that ended: its time is lost to the count (backends are pooled)
    return total


def start_collectors(
    tmp: Path, url: str, count: int, *, threshold: float, check: float, grace: float,
    max_concurrent_ingests: int | None = None,
) -> list[CollectorProcess]:  # fmt: skip
    secret = tmp / "enroll.secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    colls = [
        CollectorProcess(
            tmp,
            url,
            secret,
            log_level="warning",
            silence_heartbeats=3,
            silence_default_seconds=threshold,
            silence_check_seconds=check,
            chain_gap_grace_seconds=grace,
            # more ingests at once need the connections for them (the pool allows twice its size)
            **(
                {}
                if max_concurrent_ingests is None
                else {
                    "max_concurrent_ingests": max_concurrent_ingests,
                    "db_pool_size": max(8, (max_concurrent_ingests + 1) // 2),
                }
            ),
        )
        for _ in range(count)
    ]
    started: list[CollectorProcess] = []
    try:
        for c in colls:  # one at a time: the first one migrates the fresh database
            started.append(c.start(timeout=60))
    except BaseException:
        for c in started:
            c.stop()
        raise
    return colls


class FloorServer:
    def __init__(self) -> None:
        self.port = pg.free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FloorServer:
        root = Path(__file__).resolve().parents[3]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.bench.fleet.floor_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(f"http://127.0.0.1:{self.port}/", content=b"x", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("floor server not up in 30 s")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(20)


async def enroll(fleet: list[Booth], urls: list[str], *, concurrency: int = 16) -> None:
    """Each booth enrolls as `boothguard enroll` does, with the shared secret, and keeps its own token."""
    queue: asyncio.Queue[Booth] = asyncio.Queue()
    for b in fleet:
        queue.put_nowait(b)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            b = queue.get_nowait()
            for attempt in range(5):
                try:
                    r = await http.post(
                        urls[b.collector] + "/v1/enroll",
                        json={"host": {"id": b.host.id, "name": b.host.name}},
                        headers={"Authorization": f"Bearer {SECRET}"},
                    )
                except httpx.TransportError:  # a kept-alive connection the server closed: enroll again
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5)
                    continue
                if r.status_code == 200:
                    b.token = r.json()["token"]
                    break
                if attempt == 4:
                    raise AssertionError(f"enrollment of {b.host.id} failed: {r.status_code} {r.text[:200]}")
                await asyncio.sleep(0.5)

    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
