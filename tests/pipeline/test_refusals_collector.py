"""A real agent and a real collector (SQLite): what the envelope forbids is refused at `emit` (exit 2, a clear
reason, no seq taken), and an event the collector still rejects is dead-lettered and declared, so the chain
stays explained — no tampering alert, the booth's chain `ok`, the incident export verifies."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from boothguard.agent.client import AgentError
from boothguard.collector import db
from boothguard.collector.retention_skeleton import stored_data
from boothguard.collector.schema import alerts, events, hosts
from boothguard.collector.web import export
from boothguard.collector.web.queries import EventFilter
from tests.collector.proc import CollectorProcess
from tests.helpers.agent import AgentProcess


class Booth:
    def __init__(self, tmp: Path, **collector: Any) -> None:
        secret = tmp / "enroll.secret"
        secret.write_text("s3cret-enroll\n")
        self.db_url = f"sqlite:///{tmp / 'collector.db'}"
        self.collector = CollectorProcess(tmp, self.db_url, secret, **collector).start()
        self.agent = AgentProcess(
            tmp, {"ship": {"collector_url": self.collector.url, "batch_max_wait": 0.05, "backoff_min": 0.2}}
        )
        enroll = self.cli("enroll", "--collector", self.collector.url, "--secret-file", str(secret))
        assert enroll.returncode == 0, enroll.stderr
        self.agent.start()
        self.engine = db.create(self.db_url)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "boothguard", *args, "--config", str(self.agent.config)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    def emit(self, etype: str, data: str) -> subprocess.CompletedProcess[str]:
        return self.cli("emit", etype, "--data", data)

    def rows(self, table: sa.Table, *where: Any) -> list[dict[str, Any]]:
        with db.read(self.engine) as conn:
            found = [dict(r) for r in conn.execute(sa.select(table).where(*where)).mappings()]
        if table is events:  # stored once (schema v5): an event's data is read from the line as received
            for row in found:
                row["data"] = row["data"] if row["data"] is not None else stored_data(row["raw"])
        return found

    def stored(self) -> list[dict[str, Any]]:
        return sorted(self.rows(events), key=lambda e: int(e["seq"]))

    def wait(self, cond: Callable[[], object], timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.1)
        raise AssertionError(f"condition not met in {timeout}s; agent: {self.agent.lines[-15:]}")

    def drained(self) -> bool:
        return int(self.agent.request("status")["spool"]["depth"]) == 0

    def close(self) -> None:
        try:
            self.agent.stop()
        finally:
            self.collector.stop()
            self.engine.dispose()


@pytest.fixture
def booth_factory(tmp_path: Path) -> Iterator[Callable[..., Booth]]:
    made: list[Booth] = []

    def make(**collector: Any) -> Booth:
        booth = Booth(tmp_path, **collector)
        made.append(booth)
        return booth

    yield make
    for booth in made:
        booth.close()


def test_poison_events_are_refused_at_emit_and_the_rest_is_delivered(booth_factory: Any) -> None:
    booth: Booth = booth_factory()
    assert booth.emit("custom.before", '{"n": 1}').returncode == 0
    cases = {
        '{"v": NaN}': "NaN is not a JSON number",
        '{"v": -Infinity}': "-Infinity is not a JSON number",
        '{"v": 1e400}': "data.v: non-finite number",
        '{"v": "a\\u0000b"}': "data.v: NUL character",
        '{"k\\u0000": 1}': "NUL",
        '{"v": 9223372036854775808}': "data.v: integer outside the signed 64-bit range",
        '{"v": -9223372036854775809}': "outside the signed 64-bit range",
        json.dumps({"blob": "x" * 120_000}): "once sealed (limit 65536)",
    }
    for data, why in cases.items():
        done = booth.emit("custom.x", data)
        assert done.returncode == 2, (data[:40], done.stdout, done.stderr)
        assert why in done.stderr, done.stderr
        assert done.stdout == ""
    # Past the CLI (any client of the socket; Python's json writes NaN): the agent refuses the same.
    for data in ({"v": float("nan")}, {"v": 2**63}, {"v": "\x00"}, {"blob": "x" * 70_000}):
        with pytest.raises(AgentError) as refused:
            booth.agent.request("emit", type="custom.x", data=data)
        assert refused.value.exit_code == 2
        assert str(refused.value).startswith("event refused: ")
    after = booth.emit("custom.after", '{"n": 2}')
    assert after.returncode == 0, after.stderr
    seq = int(after.stdout)
    booth.wait(lambda: booth.drained() and any(int(e["seq"]) == seq for e in booth.stored()))

    stored = booth.stored()
    assert [int(e["seq"]) for e in stored] == list(range(1, seq + 1)), "a refused event took a seq"
    assert [e["type"] for e in stored if e["type"].startswith("custom.")] == ["custom.before", "custom.after"]
    assert booth.agent.request("status")["spool"]["dead_letters"] == 0
    [host] = booth.rows(hosts)
    assert host["chain_status"] == "ok"
    assert booth.rows(alerts, alerts.c.rule == "chain-tampering") == []


def test_an_event_the_collector_rejects_is_declared_and_the_chain_stays_explained(booth_factory: Any) -> None:
    """The collector takes less than the agent (max_event_bytes 1024 < 64 KiB): the 2 KB event is rejected,
    dead-lettered and declared as `spool.gap` (reason rejected) — a declared gap, not "Event chain broken"."""
    booth: Booth = booth_factory(max_event_bytes=1024, chain_gap_grace_seconds=3, silence_check_seconds=0.5)
    assert booth.emit("custom.before", '{"n": 1}').returncode == 0
    big = booth.emit("custom.big", json.dumps({"blob": "x" * 2000}))
    assert big.returncode == 0, big.stderr  # within the agent's limit
    big_seq = int(big.stdout)
    assert booth.emit("custom.after", '{"n": 2}').returncode == 0

    def declared() -> list[dict[str, Any]]:
        return [
            e
            for e in booth.rows(events, events.c.type == "spool.gap")
            if e["data"].get("reason") == "rejected" and e["data"].get("seqs") == [big_seq]
        ]

    def settled() -> bool:
        [host] = booth.rows(hosts)
        explained = booth.rows(alerts, alerts.c.rule == "chain-declared-gap")
        return bool(declared()) and host["hole_since"] is None and bool(explained) and booth.drained()

    booth.wait(settled)
    [gap] = declared()
    assert (gap["data"]["from_seq"], gap["data"]["to_seq"], gap["data"]["count"]) == (big_seq, big_seq, 1)
    assert "larger than 1024 bytes" in gap["data"]["errors"][0]
    seqs = {int(e["seq"]) for e in booth.stored()}
    assert big_seq not in seqs
    assert {big_seq - 1, big_seq + 1} <= seqs
    assert booth.agent.request("status")["spool"]["dead_letters"] == 1
    [host] = booth.rows(hosts)
    assert host["chain_status"] == "ok", host["chain_detail"]
    assert booth.rows(alerts, alerts.c.rule == "chain-tampering") == []
    incident = export.build(booth.engine, EventFilter(host=host["id"]), actor="test", now=time.time())
    assert incident.chain_ok, [c.as_json() for c in incident.chains]
    assert {e["type"] for e in incident.events} >= {"custom.before", "custom.after", "spool.gap"}
