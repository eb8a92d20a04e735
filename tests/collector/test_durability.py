"""The collector as the last hop: what it answered 2xx is on disk, whatever happens to the process.

- A collector process SIGKILLed in the middle of steady ingest (several posting threads): the SQLite file
  passes `PRAGMA integrity_check`, holds every event of every batch answered 2xx, and a restarted collector
  takes the re-sent in-flight batches without any chain alert.
- Beyond a process kill (a power cut drops the page cache, which a kill does not): the process is traced
  with strace, and every 2xx answer to `/v1/events` is preceded by an fdatasync/fsync of the WAL file that
  the transaction wrote. With `synchronous=NORMAL` the WAL is synced only at checkpoints, and this fails.
"""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.collector.helpers import FakeAgent, ndjson
from tests.collector.proc import CollectorProcess

SECRET = "s3cret-enroll"
BATCH = 50


def enroll(url: str, host_id: str) -> str:
    r = httpx.post(
        url + "/v1/enroll",
        json={"host": {"id": host_id, "name": host_id}},
        headers={"Authorization": f"Bearer {SECRET}"},
        timeout=30,
    )
    r.raise_for_status()
    token: str = r.json()["token"]
    return token


def post(url: str, token: str, body: bytes, timeout: float = 30) -> httpx.Response:
    return httpx.post(
        url + "/v1/events", content=body, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


class Poster(threading.Thread):
    """One booth: posts chained batches back to back until stopped; remembers which were answered 2xx."""

    def __init__(self, url: str, host_id: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.agent = FakeAgent(host_id, host_id)
        self.answered: list[list[dict[str, Any]]] = []
        self.unanswered: list[list[dict[str, Any]]] = []  # in flight when the process died
        self.stop = threading.Event()
        self.data = {"vendor_id": "0b0e", "product_id": "0420"}

    def run(self) -> None:
        while not self.stop.is_set():
            batch = [self.agent.emit("usb.device.allowed", data={**self.data, "n": i}) for i in range(BATCH)]
            try:
                r = post(self.url, self.token, ndjson(batch))
            except httpx.HTTPError:
                self.unanswered.append(batch)
                return
            if r.status_code != 200 or r.json()["accepted"] + r.json()["duplicates"] != BATCH:
                self.unanswered.append(batch)
                return
            self.answered.append(batch)


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def stored(path: Path) -> tuple[str, set[str]]:
    con = sqlite3.connect(path)
    try:
        check = con.execute("PRAGMA integrity_check").fetchone()[0]
        ids = {row[0] for row in con.execute("SELECT id FROM events")}
    finally:
        con.close()
    return check, ids


def test_sigkill_mid_ingest_loses_no_answered_batch(tmp_path: Path, secret_file: Path) -> None:
    path = tmp_path / "c.db"
    url = f"sqlite:///{path}"
    coll = CollectorProcess(tmp_path, url, secret_file, log_level="warning")
    with coll:
        posters = [Poster(coll.url, f"m-{n}", enroll(coll.url, f"m-{n}")) for n in range(3)]
        for p in posters:
            p.start()
        # Steady ingest first: each booth has had several batches answered (and keeps posting).
        wait_for(lambda: all(len(p.answered) >= 4 for p in posters), 120, "steady ingest")
        assert coll.proc is not None
        coll.proc.send_signal(signal.SIGKILL)
        coll.proc.wait(10)
        for p in posters:
            p.join(60)
            assert not p.is_alive()
    check, ids = stored(path)
    assert check == "ok"
    answered = [ev["id"] for p in posters for batch in p.answered for ev in batch]
    assert len(answered) >= 3 * 4 * BATCH
    missing = [i for i in answered if i not in ids]
    assert not missing, f"{len(missing)} events answered 2xx are not in the file"

    # The agents re-send what was in flight; the restarted collector takes it, and the chains are whole.
    with CollectorProcess(tmp_path, url, secret_file, log_level="warning") as again:
        for p in posters:
            for batch in p.unanswered:
                r = post(again.url, p.token, ndjson(batch))
                assert r.status_code == 200, r.text
                assert r.json()["accepted"] + r.json()["duplicates"] == BATCH
            tail = p.agent.emit("agent.heartbeat", data={"interval_seconds": 60})
            assert post(again.url, p.token, ndjson([tail])).json()["accepted"] == 1
    con = sqlite3.connect(path)
    try:
        chain_alerts = con.execute("SELECT rule, title FROM alerts WHERE rule LIKE 'chain%'").fetchall()
        total = con.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        con.close()
    assert chain_alerts == []
    assert total == sum(len(p.agent.events) for p in posters)


_WAL_SYNC = re.compile(r"^\d+\s+f(?:data)?sync\(\d+<([^>]*-wal)>\)\s+=\s+0")
# The body of an ingest answer, as strace prints the socket write that carries it.
_ANSWER = re.compile(r'^\d+\s+(?:sendto|write)\(\d+<[^>]*>, "\{\\"accepted\\":(\d+)')


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (tests/apt-packages.txt)")
def test_every_answered_batch_was_fsynced_first(tmp_path: Path, secret_file: Path) -> None:
    """A power cut loses what is only in the page cache: the WAL must reach the disk before the answer."""
    path = tmp_path / "c.db"
    trace = tmp_path / "strace.log"
    syscalls = "trace=fsync,fdatasync,sendto,write"
    prefix = ["strace", "-f", "--seccomp-bpf", "-y", "-s", "24", "-o", str(trace), "-e", syscalls]
    coll = CollectorProcess(tmp_path, f"sqlite:///{path}", secret_file, log_level="warning", prefix=prefix)
    rounds = 12
    with coll:
        token = enroll(coll.url, "m-1")
        agent = FakeAgent("m-1", "b1")
        for i in range(rounds):
            batch = [agent.emit("usb.device.allowed", data={"vendor_id": "0b0e", "n": n}) for n in range(20)]
            r = post(coll.url, token, ndjson(batch), timeout=60)
            assert r.status_code == 200, (i, r.text)
            assert r.json()["accepted"] == 20
    lines = trace.read_text().splitlines()
    synced = answers = 0
    for line in lines:
        if _WAL_SYNC.match(line):
            synced += 1
        elif (m := _ANSWER.match(line)) and m.group(1) == "20":
            answers += 1
            # Each ingest answer needs a WAL sync of its own, after the previous answer.
            assert synced >= answers, f"answer {answers} sent before its commit reached the disk"
    assert answers == rounds
    assert synced >= rounds
