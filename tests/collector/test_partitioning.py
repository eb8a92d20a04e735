"""PostgreSQL at scale: `events` partitioned by month in place (v6), months created ahead, the default
partition catching what no month holds, and the query indexes the pages use (EXPLAIN on a real server)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from boothguard.collector import db, migrations, partitions
from boothguard.collector.schema import LATEST, tables
from tests.collector import pg
from tests.collector.conftest import SECRET
from tests.collector.helpers import Clock, FakeAgent, client, enroll, make_store, post


def _unix(y: int, m: int, d: int) -> float:
    return datetime(y, m, d, 12, tzinfo=UTC).timestamp()


def _where(conn: Connection) -> dict[int, str]:
    """pk → the partition its row is stored in."""
    q = sa.text("SELECT pk, tableoid::regclass::text FROM events")
    return {int(pk): str(part) for pk, part in conn.execute(q)}


def _v4_database(url: str) -> tuple[Engine, FakeAgent, dict[int, float]]:
    """A populated v4 database as the previous collector left it: one booth, events over three months."""
    engine = db.create(url)
    migrations.migrate(engine, target=4)
    v4 = tables(4).tables
    agent = FakeAgent("pg-host", name="Booth P")
    agent.emit("agent.started", data={"usb_mode": "enforce"})
    agent.many(4, "agent.heartbeat")
    agent.emit("session.watcher_missing", "high", {"reason": "no heartbeat from watcher"})
    agent.many(4, "agent.heartbeat")
    received = {}
    with db.write(engine) as conn:
        conn.execute(
            sa.insert(v4["hosts"]).values(
                id=agent.host_id, name=agent.name, token_hash="a" * 64, enrolled_at=_unix(2026, 1, 1),
                last_seen=_unix(2026, 3, 5), last_type="agent.heartbeat", state="online",
                chain_seq=agent.seq, chain_hash=agent.head, max_seq=agent.seq,
            )
        )  # fmt: skip
        for i, ev in enumerate(agent.events):
            at = _unix(2026, 1 + i // 4, 1 + i)  # Jan, Feb, Mar
            received[ev["seq"]] = at
            conn.execute(
                sa.insert(v4["events"]).values(
                    host_id=agent.host_id, seq=ev["seq"], id=ev["id"], time=ev["time"], type=ev["type"],
                    severity=ev["severity"], user=ev.get("user"), prev_hash=ev["prev_hash"], hash=ev["hash"],
                    data=ev["data"], raw=json.dumps(ev), received=at,
                )
            )  # fmt: skip
    return engine, agent, received


@pytest.fixture
def pg_url(pg_cluster: pg.PgCluster) -> str:
    return pg_cluster.new_database()


def _all_rows(conn: Connection) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c.name}"' for c in tables(4).tables["events"].columns)
    return [tuple(r) for r in conn.execute(sa.text(f"SELECT {cols} FROM events ORDER BY pk"))]


def test_v4_database_is_partitioned_in_place_and_keeps_every_row(pg_url: str) -> None:
    engine, agent, received = _v4_database(pg_url)
    with db.read(engine) as conn:
        before = _all_rows(conn)
        assert not partitions.is_partitioned(conn)
    assert migrations.migrate(engine) == 4
    with db.read(engine) as conn:
        assert migrations.current_version(conn) == LATEST
        assert partitions.is_partitioned(conn)
        parts = partitions.existing(conn)
        assert set(parts) == {"events_y2026m01", "events_y2026m02", "events_y2026m03", "events_default"}
        assert parts["events_default"] == "DEFAULT"
        assert _all_rows(conn) == before  # every column of every row, same pk
        by_seq = dict(conn.execute(sa.text("SELECT pk, seq FROM events")).all())
        for pk, part in _where(conn).items():
            assert part == partitions.month_of(received[by_seq[pk]]).name
        pkey = conn.execute(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = 'events'::regclass AND contype = 'p'"
            )
        ).scalar()
        assert pkey == "PRIMARY KEY (pk, received)"
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("events")}
        assert {"ix_events_host_time", "ix_events_type_time", "ix_events_user_time"} <= indexes
        assert "ix_events_type" not in indexes  # superseded by (type, time)
        host = conn.execute(sa.text("SELECT * FROM hosts")).mappings().one()
    # What the booths page shows now comes from the row, filled from the history once.
    assert host["usb_mode"] == "enforce"
    assert (host["watcher_state"], host["watcher_reason"]) == ("missing", "no heartbeat from watcher")
    assert host["watcher_since"] == agent.events[5]["time"]
    assert host["last_time"] == agent.events[-1]["time"]


def test_after_conversion_ingest_continues_the_chain_and_months_are_created_ahead(
    pg_url: str, secret_file: Path
) -> None:
    engine, agent, _ = _v4_database(pg_url)
    migrations.migrate(engine)
    clock = Clock(_unix(2031, 5, 2))  # a month no partition holds yet
    with client(make_store(pg_url, clock=clock), secret_file) as c:
        token = enroll(c, SECRET, agent.host_id, agent.name)  # re-enrolling rotates the booth's token
        batch = [agent.emit("agent.heartbeat", data={"interval_seconds": 30, "spool_depth": 7})]
        batch.append(agent.emit("session.started", data={"session": "c1"}))
        r = post(c, token, batch)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 2
        again = post(c, token, batch)  # the same batch again: duplicates, nothing stored twice
        assert again.json()["duplicates"] == 2
    with db.read(engine) as conn:
        where = _where(conn)
        new = conn.execute(sa.text("SELECT pk FROM events WHERE seq > 10 ORDER BY pk")).scalars().all()
        assert len(new) == 2
        assert min(new) > max(pk for pk in where if pk not in new)  # the pk sequence continued
        assert {where[pk] for pk in new} == {"events_default"}  # ingest never fails for want of a month
        host = conn.execute(sa.text("SELECT * FROM hosts")).mappings().one()
    assert (host["chain_status"], host["chain_seq"]) == ("ok", 12)
    assert (host["spool_backlog"], host["heartbeat_seconds"]) == (7, 30.0)
    assert (host["watcher_state"], host["watcher_reason"]) == ("ok", None)
    # The collector creates the month (moving its rows out of the default partition) and the next two.
    created = partitions.ensure(engine, clock())
    assert created == ["events_y2031m05", "events_y2031m06", "events_y2031m07"]
    assert partitions.ensure(engine, clock()) == []  # once
    with db.read(engine) as conn:
        where = _where(conn)
        assert {where[pk] for pk in new} == {"events_y2031m05"}
        assert conn.execute(sa.text("SELECT count(*) FROM events_default")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar() == 12


def test_a_fresh_database_is_partitioned_and_sqlite_stays_plain(pg_url: str, tmp_path: Any) -> None:
    engine = db.create(pg_url)
    migrations.migrate(engine)
    assert partitions.ensure(engine, _unix(2026, 12, 4)) == [
        "events_y2026m12", "events_y2027m01", "events_y2027m02",
    ]  # fmt: skip
    with db.read(engine) as conn:
        assert set(partitions.existing(conn)) == {
            "events_default", "events_y2026m12", "events_y2027m01", "events_y2027m02",
        }  # fmt: skip
    lite = db.create(f"sqlite:///{tmp_path / 'e.db'}")
    migrations.migrate(lite)
    assert partitions.ensure(lite, _unix(2026, 12, 4)) == []
    with db.read(lite) as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("events")}
    assert {"ix_events_host_time", "ix_events_type_time", "ix_events_user_time"} <= indexes


def test_month_bounds() -> None:
    dec = partitions.month_of(_unix(2026, 12, 31))
    assert dec.name == "events_y2026m12"
    assert dec.end == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert [m.name for m in partitions.months(_unix(2026, 11, 30), _unix(2027, 1, 1))] == [
        "events_y2026m11", "events_y2026m12", "events_y2027m01",
    ]  # fmt: skip


def test_conversion_carries_what_a_v5_step_added(pg_url: str) -> None:
    """v6 runs after a v5 this branch does not have: whatever column and index v5 put on `events` (here a
    stand-in for retention's chain-skeleton marker) survive the conversion with their values."""
    engine, _agent, _ = _v4_database(pg_url)
    migrations.migrate(engine, target=5)
    with db.write(engine) as conn:
        conn.execute(sa.text("ALTER TABLE events ADD COLUMN skeleton BOOLEAN NOT NULL DEFAULT false"))
        conn.execute(sa.text("UPDATE events SET skeleton = (seq % 2 = 0)"))
        conn.execute(sa.text("CREATE INDEX ix_events_skeleton ON events (host_id, skeleton)"))
    migrations.migrate(engine)
    with db.read(engine) as conn:
        assert partitions.is_partitioned(conn)
        marked = conn.execute(sa.text("SELECT seq FROM events WHERE skeleton ORDER BY seq")).scalars().all()
        assert marked == [2, 4, 6, 8, 10]
        assert "ix_events_skeleton" in {i["name"] for i in sa.inspect(conn).get_indexes("events")}
        default = conn.execute(
            sa.text("SELECT column_default FROM information_schema.columns WHERE column_name = 'skeleton'")
        ).scalar()
        assert default == "false"


def test_collectors_creating_months_at_once_create_each_once(pg_url: str) -> None:
    engine = db.create(pg_url)
    migrations.migrate(engine)
    engines = [db.create(pg_url) for _ in range(3)]
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def go(e: Engine) -> None:
        try:
            results.append(partitions.ensure(e, _unix(2027, 3, 3)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(name for r in results for name in r) == [
        "events_y2027m03",
        "events_y2027m04",
        "events_y2027m05",
    ]
