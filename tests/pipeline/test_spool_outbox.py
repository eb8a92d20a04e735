"""The spool's outbox: batches read in one step, acks as a watermark, no delete per batch."""

import json
from pathlib import Path

from boothguard.events import AgentRef, Draft, HostRef
from boothguard.spool.outbox import ordered_within
from boothguard.spool.spool import Spool

HOST = HostRef(id="m1", name="booth-1")
AGENT = AgentRef(version="test")


def make(path: Path, max_bytes: int = 1 << 30) -> Spool:
    spool = Spool(path, host=HOST, agent=AGENT, max_bytes=max_bytes, reserve_bytes=0)
    spool.open()
    return spool


def rows_on_disk(spool: Spool) -> int:
    return int(spool._conn.execute("SELECT count(*) FROM events").fetchone()[0])


def unsent(spool: Spool) -> list[int]:
    chunk = spool.read(10**6, 1 << 40)
    return list(chunk.seqs) if chunk else []


def test_read_gives_ndjson_in_seq_order_with_urgency(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db")
    spool.append_batch([Draft("custom.a", "info", {"i": i}) for i in range(5)])
    spool.append_batch([Draft("custom.b", "high", {"i": 5})])
    chunk = spool.read(100, 1 << 20)
    assert chunk is not None
    assert chunk.seqs == (1, 2, 3, 4, 5, 6)
    assert [json.loads(b)["seq"] for b in chunk.bodies()] == [1, 2, 3, 4, 5, 6]
    assert chunk.ndjson.endswith(b"\n")
    assert chunk.ndjson.count(b"\n") == 6
    assert chunk.urgent_created is not None
    assert chunk.urgent_created >= chunk.oldest_created
    after = spool.read(100, 1 << 20, after_seq=4)
    assert after is not None
    assert after.seqs == (5, 6)
    assert spool.read(100, 1 << 20, after_seq=6) is None
    only_info = spool.read(3, 1 << 20)
    assert only_info is not None
    assert only_info.urgent_created is None


def test_read_caps_events_and_bytes_but_always_gives_one(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db")
    spool.append_batch([Draft("custom.a", data={"pad": "x" * 300}) for _ in range(20)])
    size = len(spool.read(1, 1 << 20).ndjson)  # type: ignore[union-attr]
    assert spool.read(5, 1 << 20).seqs == (1, 2, 3, 4, 5)  # type: ignore[union-attr]
    capped = spool.read(100, 3 * size + 10)
    assert capped is not None
    assert capped.seqs == (1, 2, 3)
    assert len(capped.ndjson) <= 3 * size + 10
    alone = spool.read(100, 10)
    assert alone is not None
    assert alone.seqs == (1,)


def test_small_events_over_the_cap_are_trimmed_after_the_read(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db")
    spool.append_batch([Draft("custom.a", data={"pad": "x" * 300}) for _ in range(20)])
    size = len(spool.read(1, 1 << 20).ndjson)  # type: ignore[union-attr]
    # 20 events fit 4x the cap: one plain read, then trimmed to what fits.
    chunk = spool.read(20, 5 * size + 5)
    assert chunk is not None
    assert chunk.seqs == (1, 2, 3, 4, 5)
    assert [json.loads(b)["seq"] for b in chunk.bodies()] == [1, 2, 3, 4, 5]


def test_large_events_stop_at_the_byte_cap_in_sql(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db")
    spool.append_batch([Draft("custom.big", data={"pad": "y" * 10_000}) for _ in range(30)])
    # 500 x 10 kB would be far over a 25 kB cap: the capped query reads two, not five hundred.
    chunk = spool.read(500, 25_000)
    assert chunk is not None
    assert chunk.seqs == (1, 2)
    assert len(chunk.ndjson) <= 25_000


def test_order_is_restored_and_pairs_kept() -> None:
    seqs, ndjson = ordered_within((3, 1, 2), b"c\na\nb\n", 1 << 20)
    assert (seqs, ndjson) == ((1, 2, 3), b"a\nb\nc\n")
    assert ordered_within((2, 1), b"bb\na\n", 3) == ((1,), b"a\n")


def test_ack_is_a_watermark_that_survives_reopen(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db")
    spool.append_batch([Draft("custom.a") for _ in range(10)])
    spool.ack(range(1, 5))
    assert unsent(spool) == [5, 6, 7, 8, 9, 10]
    assert spool.stats().depth == 6
    assert rows_on_disk(spool) == 10  # no delete per batch
    spool.close()
    spool = make(tmp_path / "spool.db")
    assert unsent(spool) == [5, 6, 7, 8, 9, 10]
    spool.ack(range(5, 11))
    # Nothing unacknowledged left: the whole-table delete, and the byte count starts over.
    assert rows_on_disk(spool) == 0
    assert spool.stats().bytes == 0
    body = spool.append_batch([Draft("custom.b")])[0].body
    assert body["seq"] == 11
    assert unsent(spool) == [11]


def test_out_of_order_ack_and_dead_letter_holes(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db")
    spool.append_batch([Draft("custom.a") for _ in range(10)])
    spool.ack([6, 7, 8])  # ahead of the watermark: those rows go now
    assert unsent(spool) == [1, 2, 3, 4, 5, 9, 10]
    spool.dead_letter([(3, "refused")])
    spool.ack([1, 2, 4, 5])  # the dead-lettered hole does not hold the watermark back
    assert unsent(spool) == [9, 10]
    spool.ack([9, 10])
    assert rows_on_disk(spool) == 0
    assert spool.stats().dead_letters == 1


def test_full_spool_purges_acknowledged_rows_before_dropping_any(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db", max_bytes=40_000)
    pad = "z" * 300
    for _ in range(5):
        spool.append_batch([Draft("custom.low", "low", {"pad": pad}) for _ in range(10)])
    spool.ack(range(1, 50))  # all but the last: acknowledged rows stay on disk
    assert rows_on_disk(spool) == 50
    for _ in range(5):
        spool.append_batch([Draft("custom.low", "low", {"pad": pad}) for _ in range(10)])
    assert spool.dropped_full == 0
    evs = [json.loads(b) for b in spool.read(10**6, 1 << 40).bodies()]  # type: ignore[union-attr]
    assert [e["seq"] for e in evs] == list(range(50, 101))
    assert not any(e["type"] == "spool.gap" for e in evs)
    assert spool.stats().bytes <= 40_000


def test_deleted_rows_are_zeroed_where_it_costs_no_io(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool.db")
    assert spool._conn.execute("PRAGMA secure_delete").fetchone()[0] == 2  # FAST
