"""The fleet simulator (tests/bench/bench_fleet.py) at CI size, and proof that its checks can fail.

A real run: 50 booths enrolled through the API of real collector processes (two on one real PostgreSQL, or
one on SQLite), posting chained gzipped NDJSON at a compressed beat of 4 s; one booth stops and must be
alerted silent, one loses the network and comes back with a backlog. Then the checks themselves are shown
to catch a lost, a rewritten and a duplicated event, a false silence and a missed one, on a real store.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from boothguard.collector import db
from boothguard.collector.ingest import parse_lines
from tests.bench.bench_fleet import failures, main
from tests.bench.fleet import report
from tests.bench.fleet.booths import make_fleet, plan
from tests.bench.fleet.run import BadOptions, Options, run
from tests.collector import pg
from tests.collector.helpers import make_store

CI = {"booths": 50, "beat": 4.0, "seconds": 24.0, "capacity_seconds": 2.0}


def _check_run(result: dict[str, object], collectors: int) -> None:
    assert failures(result) == []
    once, silence, fleet = result["exactly_once"], result["silence"], result["fleet"]
    assert isinstance(once, dict)
    assert isinstance(silence, dict)
    assert isinstance(fleet, dict)
    # the booths really ran: every one posted, the stopped one was alerted, the backlog went in one batch
    assert once["acked"] >= 50 * 24 / 4
    assert once["stored"] >= once["acked"]
    assert silence["stopped"] == silence["alerted_true"] == 1
    # checked every beat/4 = 1 s; the "within 3 minutes" of a 3-minute threshold, compressed
    assert 0 <= silence["latency_after_threshold_s"]["max"] <= 3 * 4.0
    assert fleet["largest_batch_events"] >= 200
    assert result["collectors"] == collectors
    storage = result["storage"]
    assert isinstance(storage, dict)
    assert 300 < storage["bytes_per_event"] < 20_000
    classes = storage["bytes_per_event_by_class"]
    if (
        collectors == 2
    ):  # PostgreSQL: each class measured, a skeleton smaller than the heartbeat it stands for
        assert 0 < classes["heartbeat_as_skeleton"] < classes["heartbeat"]
        assert (
            storage["bytes_per_booth_year_heartbeats_skeleton_after_7_days"]
            < storage["bytes_per_booth_year_no_retention"]
        )
    capacity = result["capacity"]
    assert isinstance(capacity, dict)
    assert capacity["http_5xx"] == 0  # six booths in flight per collector stay under max_concurrent_ingests
    assert capacity["collector_cpu_ms_per_request"] > 0


def test_fleet_two_collectors_one_postgresql(tmp_path: Path) -> None:
    why = pg.available()
    if why:
        pytest.skip(f"PostgreSQL cannot run here: {why}")
    _check_run(run(Options(collectors=2, db="pg", **CI), tmp_path), 2)


def test_fleet_one_collector_sqlite(tmp_path: Path) -> None:
    _check_run(run(Options(db="sqlite", **CI), tmp_path), 1)


def test_checks_catch_loss_rewrite_and_false_silence(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = make_store(url)
    rng = random.Random(3)
    fleet = make_fleet(4, collectors=1, stop_fraction=0.25, reconnect_fraction=0, rng=rng)
    for b in fleet:
        store.enroll(b.host.id, b.host.name)
        plan(b, start=1_800_000_000.0, seconds=30, beat=5, backlog=0, rng=rng)
        lines, rejected = parse_lines(
            b"".join(p.raw + b"\n" for p in b.planned), max_event_bytes=65536, max_events=5000
        )
        assert store.ingest(b.host.id, lines, rejected).accepted == len(b.planned)
        b.acked = {p.seq: p.raw for p in b.planned}
    assert report.exactly_once(url, fleet)["missing"] == 0
    victim = fleet[0].host.id
    with db.write(store.engine) as conn:
        conn.execute(sa.text("DELETE FROM events WHERE host_id = :h AND seq = 2"), {"h": victim})
        conn.execute(
            sa.text("UPDATE events SET raw = raw || ' ' WHERE host_id = :h AND seq = 3"), {"h": victim}
        )
    fleet[1].acked.pop(1)  # stored, yet never acknowledged to the booth
    once = report.exactly_once(url, fleet)
    assert (once["missing"], once["altered"], once["unexpected"], once["duplicates"]) == (1, 1, 1, 0)
    stopped = next(b for b in fleet if b.role == "stops")
    steady = next(b for b in fleet if b.role == "steady")
    alerts, hosts = report.alerts_and_hosts(url)
    fake = [{"host_id": steady.host.id, "event_type": "collector.host.silent", "first_seen": 0.0}]
    found = report.silence(alerts + fake, hosts, fleet, 15)
    assert (found["alerted_true"], found["false_silences"], found["not_alerted"]) == (0, 1, [stopped.host.id])
    result = {"exactly_once": once, "silence": found, "chain": report.chain(alerts, hosts)}
    assert failures(result) == [
        "1 events missing",
        "1 events altered",
        "1 stopped booths not alerted silent",
        "1 false silences",
    ]
    # a duplicate (host, seq) can only come from a schema without the unique key: the count is what
    # proves exactly-once on such a table, so it is shown to count
    with db.write(store.engine) as conn:
        conn.execute(sa.text("DROP INDEX IF EXISTS uq_events_host_seq"))
        conn.execute(sa.text("CREATE TABLE events2 AS SELECT * FROM events"))
        conn.execute(
            sa.text("INSERT INTO events2 SELECT * FROM events WHERE host_id = :h AND seq = 4"), {"h": victim}
        )
        conn.execute(sa.text("DROP TABLE events"))
        conn.execute(sa.text("ALTER TABLE events2 RENAME TO events"))
    assert report.exactly_once(url, fleet)["duplicates"] == 1
    store.engine.dispose()


def test_bad_options_are_refused_clearly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(BadOptions, match=r"--seconds must be within 20\.\.3600"):
        Options(beat=4, seconds=10).validate()
    with pytest.raises(BadOptions, match="share PostgreSQL only"):
        Options(db="sqlite", collectors=2).validate()
    monkeypatch.setattr("sys.argv", ["bench_fleet", "--seconds", "5"])
    assert main() == 2
    assert "--seconds must be within" in capsys.readouterr().err


def test_sqlite_writers_queue_in_process(tmp_path: Path) -> None:
    """A second writer waits on the engine's queue, not in SQLite's sleeping busy handler: it issues no
    BEGIN while the first one holds the write transaction."""
    engine = db.create(f"sqlite:///{tmp_path / 'q.db'}")
    begins: list[str] = []
    sa.event.listen(engine, "begin", lambda conn: begins.append(threading.current_thread().name))
    held, release, entered = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with db.write(engine):
            held.set()
            release.wait(30)

    def second() -> None:
        with db.write(engine):
            entered.set()

    a = threading.Thread(target=first, name="first")
    a.start()
    assert held.wait(30)
    b = threading.Thread(target=second, name="second")
    b.start()
    # Without the queue the second thread reaches BEGIN IMMEDIATE within milliseconds and sleeps in SQLite.
    assert not entered.wait(1.0)
    assert begins == ["first"]
    release.set()
    assert entered.wait(30)
    a.join(30)
    b.join(30)
    assert begins == ["first", "second"]
    engine.dispose()
