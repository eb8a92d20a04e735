"""Issue 17: a v4 database (every event stored twice, data and raw) converted in place to v5, on SQLite
(table rebuilt) and PostgreSQL (columns altered): every row kept as it was, the chain verifying, then
ingest storing once and retention compacting the old rows."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from boothguard.collector import db, migrations, retention
from boothguard.collector.retention_settings import DAY, RetentionSection
from boothguard.collector.schema import events, hosts, tables
from boothguard.collector.web import reports
from tests.collector.conftest import SECRET
from tests.collector.helpers import Clock, FakeAgent, client, enroll, make_store, post

HOST = "m-v4"
N = 300


def _seed_v4(engine: sa.Engine, agent: FakeAgent, received: float) -> None:
    v4 = tables(4)
    evs = [
        agent.emit("usb.device.blocked", "high", {"vendor_id": "0781", "i": i})
        if i % 10 == 0
        else agent.emit("agent.heartbeat", data={"last_seq": i + 1, "i": i})
        for i in range(N)
    ]
    with db.write(engine) as conn:
        conn.execute(
            sa.insert(v4.tables["hosts"]).values(
                id=HOST, name="booth-v4", enrolled_at=received, state="online", chain_seq=N,
                chain_hash=agent.head, max_seq=N, chain_status="ok",
            )
        )  # fmt: skip
        conn.execute(
            sa.insert(v4.tables["events"]),
            [
                {
                    "host_id": HOST, "seq": e["seq"], "id": e["id"], "time": e["time"], "type": e["type"],
                    "severity": e["severity"], "user": None, "prev_hash": e["prev_hash"], "hash": e["hash"],
                    "data": e["data"], "raw": json.dumps(e), "received": received + e["seq"],
                }
                for e in evs
            ],
        )  # fmt: skip


def _snapshot(engine: sa.Engine) -> list[tuple[object, ...]]:
    with db.read(engine) as conn:
        q = sa.text("SELECT pk, seq, id, type, prev_hash, hash, data, raw, received FROM events ORDER BY pk")
        return [
            (*r[:6], json.loads(r[6]) if isinstance(r[6], str) else r[6], r[7], r[8]) for r in conn.execute(q)
        ]


def test_v4_database_converted_in_place(db_url: str, secret_file: Path) -> None:
    engine = db.create(db_url)
    assert migrations.migrate(engine, target=4) == 0
    agent = FakeAgent(HOST, "booth-v4")
    start = 1_800_000_000.0
    _seed_v4(engine, agent, start)
    before = _snapshot(engine)
    assert len(before) == N

    assert migrations.migrate(engine, target=5) == 4
    with db.read(engine) as conn:
        assert migrations.current_version(conn) == 5
        inspector = sa.inspect(conn)
        for table in tables(5).sorted_tables:
            have = {c["name"]: c for c in inspector.get_columns(table.name)}
            assert set(have) == {c.name for c in table.columns}, table.name
        cols = {c["name"]: c for c in inspector.get_columns("events")}
        assert cols["data"]["nullable"]
        assert cols["raw"]["nullable"]
        assert cols["compacted"]["nullable"]
        assert not cols["seq"]["nullable"]
        assert not cols["hash"]["nullable"]
        indexes = {i["name"] for i in inspector.get_indexes("events")}
        assert {"ix_events_time", "ix_events_type"} <= indexes
        uniques = inspector.get_unique_constraints("events") + [
            i for i in inspector.get_indexes("events") if i["unique"]
        ]
        assert any(list(u["column_names"]) == ["host_id", "seq"] for u in uniques)
        assert conn.execute(sa.select(sa.func.count()).where(events.c.compacted.is_not(None))).scalar() == 0
    assert _snapshot(engine) == before  # every row as it was, pks included
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    [rep] = reports.verify_hosts(engine, {HOST: (1, N)})
    assert rep.ok, rep
    assert rep.events_checked == N
    with db.write(engine) as conn:  # the unique (host, seq) survived the rebuild
        dup = dict(zip(("pk", "seq"), before[0][:2], strict=True))
        try:
            with conn.begin_nested():
                conn.execute(
                    sa.insert(events).values(
                        host_id=HOST, seq=dup["seq"], id="x", time="t", type="a.b", severity="info",
                        prev_hash="0" * 64, hash="0" * 64, received=0.0,
                    )
                )  # fmt: skip
            raise AssertionError("a second event with the same host and seq was stored")
        except sa.exc.IntegrityError:
            pass
    engine.dispose()

    # The booth goes on: new events stored once, linked to the migrated ones.
    clock = Clock(start + 2 * DAY)
    store = make_store(db_url, clock)
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, HOST, "booth-v4")
        r = post(c, token, agent.many(5))
        assert r.json()["accepted"] == 5, r.text
    with db.read(store.engine) as conn:
        h = conn.execute(sa.select(hosts).where(hosts.c.id == HOST)).one()
        new = conn.execute(sa.select(events.c.pk, events.c.data).where(events.c.seq > N)).all()
    assert (h.chain_status, h.chain_seq) == ("ok", N + 5)
    assert all(pk > before[-1][0] and data is None for pk, data in new)

    # Retention compacts the old double-stored rows like any other.
    cfg = RetentionSection(housekeeping_days=1, security_days=1)
    report = retention.run(store.engine, cfg, clock.now)
    assert report.total == N
    [rep] = reports.verify_hosts(store.engine, {HOST: (1, N + 5)})
    assert rep.ok, rep
    assert rep.skeletons == [(1, N)]
    store.engine.dispose()
