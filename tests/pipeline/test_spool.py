import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from boothguard.errors import PersistenceError
from boothguard.events import ZERO_HASH, AgentRef, Draft, Event, HostRef, verify_chain
from boothguard.spool.spool import RESERVE_STEP, Spool

HOST = HostRef(id="m1", name="booth-1")
AGENT = AgentRef(version="test")


def make(path: Path, max_bytes: int = 1 << 30, reserve: int = 0) -> Spool:
    spool = Spool(path, host=HOST, agent=AGENT, max_bytes=max_bytes, reserve_bytes=reserve)
    spool.open()
    return spool


def bodies(spool: Spool) -> list[Event]:
    chunk = spool.read(10**6, 1 << 40)
    return [Event.model_validate_json(b) for b in chunk.bodies()] if chunk else []


def test_seq_chain_and_wal_full_sync(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db")
    spool.append_batch([Draft("custom.a", data={"i": i}) for i in range(10)])
    assert spool._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert spool._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    evs = bodies(spool)
    assert [e.seq for e in evs] == list(range(1, 11))
    assert evs[0].prev_hash == ZERO_HASH
    assert verify_chain(evs) == []
    assert oct((tmp_path / "spool.db").stat().st_mode & 0o777) == "0o600"


def test_seq_never_repeats_across_reopen_and_ack(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db")
    spool.append_batch([Draft("custom.a") for _ in range(5)])
    spool.ack(range(1, 6))
    spool.close()
    spool = make(tmp_path / "spool.db")
    body = spool.append_batch([Draft("custom.b")])[0].body
    assert body["seq"] == 6
    assert spool.stats().depth == 1


def test_full_spool_drops_lowest_first_and_declares_the_gap(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db", max_bytes=20_000)
    pad = "x" * 300
    spool.append_batch([Draft("custom.high", "high", {"pad": pad}) for _ in range(5)])
    for _ in range(40):
        spool.append_batch([Draft("custom.low", "low", {"pad": pad})])
    evs = bodies(spool)
    assert sum(e.type == "custom.high" for e in evs) == 5, (
        "a higher event was dropped while lower ones existed"
    )
    gaps = [e for e in evs if e.type == "spool.gap"]
    assert gaps
    assert all(g.data["reason"] == "full" and g.data["count"] >= 1 for g in gaps)
    dropped = sum(g.data["count"] for g in gaps)
    kept_low = sum(e.type == "custom.low" for e in evs)
    assert kept_low + dropped == 40
    assert spool.stats().bytes <= 20_000 + 2_000
    # Every missing seq is covered by a declaration: no unexplained gap for the collector.
    assert [p for p in verify_chain(evs) if p.kind not in ("declared_gap", "broken_link")] == []


def test_full_spool_of_high_events_drops_them_but_never_silently(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db", max_bytes=10_000)
    for _ in range(60):
        spool.append_batch([Draft("custom.high", "high", {"pad": "y" * 300})])
    evs = bodies(spool)
    gaps = [e for e in evs if e.type == "spool.gap"]
    assert gaps
    assert all(g.severity == "high" for g in gaps)
    dropped_high = sum(g.data["by_severity"].get("high", 0) for g in gaps)
    assert dropped_high > 0
    assert dropped_high + sum(e.type == "custom.high" for e in evs) == 60


@pytest.mark.parametrize("damage", ["garbage", "truncated", "zero", "missing"])
def test_damaged_spool_is_moved_aside_and_reported(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "spool.db"
    spool = make(path)
    spool.append_batch([Draft("custom.a", data={"pad": "z" * 500}) for _ in range(200)])
    spool.ack(range(1, 51))
    spool.close()
    if damage == "garbage":
        path.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size // 3)
        for extra in ("-wal", "-shm"):
            Path(str(path) + extra).unlink(missing_ok=True)
    elif damage == "zero":
        path.write_bytes(b"")
        for extra in ("-wal", "-shm"):
            Path(str(path) + extra).unlink(missing_ok=True)
    else:
        path.unlink()
        for extra in ("-wal", "-shm"):
            Path(str(path) + extra).unlink(missing_ok=True)
    spool = Spool(path, host=HOST, agent=AGENT, max_bytes=1 << 30, reserve_bytes=0)
    recovered = spool.open()
    [gap] = recovered
    assert gap["type"] == "spool.gap"
    assert gap["data"]["reason"] == "corrupt"
    assert gap["data"]["chain_restart"] is True
    assert gap["prev_hash"] == ZERO_HASH
    assert gap["seq"] > 200, "seq must never go back after losing the spool file"
    assert gap["data"]["from_seq"] <= 51
    assert gap["data"]["to_seq"] >= 200
    if damage in ("garbage", "truncated"):
        assert list(tmp_path.glob("spool.db.corrupt-*"))
    # And the next start is clean: no crash loop, no second report.
    spool.close()
    again = Spool(path, host=HOST, agent=AGENT, max_bytes=1 << 30, reserve_bytes=0)
    assert again.open() == []
    body = again.append_batch([Draft("custom.after")])[0].body
    assert body["seq"] == gap["seq"] + 1
    assert body["prev_hash"] == gap["hash"]


def test_sidecar_reserves_seq_blocks(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db")
    spool.append_batch([Draft("custom.a")])
    side = json.loads((tmp_path / "spool.db.seq").read_text())
    assert side["reserved"] == 1 + RESERVE_STEP


def test_read_only_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "ro"
    state.mkdir()
    if os.geteuid() == 0:
        # Root ignores mode bits; a read-only mount is what a broken disk looks like to it.
        if subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(state)], check=False
        ).returncode:
            pytest.skip("this machine does not allow mounting tmpfs")
    else:
        state.chmod(0o500)
    try:
        spool = Spool(state / "spool.db", host=HOST, agent=AGENT, max_bytes=1 << 20)
        with pytest.raises(PersistenceError, match="cannot open spool"):
            spool.open()
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(state)], check=False)


def test_disk_full_is_survived_and_reported(small_fs: Path) -> None:
    spool = Spool(small_fs / "spool.db", host=HOST, agent=AGENT, max_bytes=1 << 30, reserve_bytes=1 << 20)
    spool.open()
    assert (small_fs / "spool.db.reserve").exists()
    # Fill the rest of the disk with someone else's file.
    with open(small_fs / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    committed = 0
    for i in range(300):
        try:
            spool.append_batch([Draft("custom.low", "low", {"i": i, "pad": "q" * 400})])
        except PersistenceError:
            break
        committed += 1
    assert committed > 0
    evs = bodies(spool)
    types = [e.type for e in evs]
    assert "spool.disk_full" in types
    assert spool.stats().disk_full or not (small_fs / "spool.db.reserve").exists()
    # Room comes back: the agent keeps going and re-creates its reserve.
    (small_fs / "filler").unlink()
    spool.append_batch([Draft("custom.after")])
    assert (small_fs / "spool.db.reserve").exists()
    assert not spool.stats().disk_full
    assert sqlite3.connect(small_fs / "spool.db").execute("PRAGMA quick_check").fetchone()[0] == "ok"
