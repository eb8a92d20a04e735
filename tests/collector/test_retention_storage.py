"""Issue 17: storage per booth-year, measured on seeded data on both backends (README "Retention").

Real heartbeats and security events go in through the API; the table is then measured (after VACUUM) as
stored now (once: raw only), as v4 stored it (data and raw), with the heartbeats compacted, and with
everything compacted, which gives the bytes of a row of each kind, indexes included. Run with -s to see
the figures; the test checks the orders of magnitude the README states.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from boothguard.collector import db, retention
from boothguard.collector.retention_settings import DAY, RetentionSection
from tests.collector.conftest import SECRET
from tests.collector.helpers import Clock, FakeAgent, client, enroll, make_store, post

BEATS, SECURITY = 6000, 600
YEAR_BEATS = 365 * 24 * 60  # agent.heartbeat every 60 s (the agent's default), all year
YEAR_SECURITY = 200 * 365  # assumed: 200 security events a booth-day (clipboard, lock, session, USB)
WHOLE_BEATS = 7 * 24 * 60  # the default 7 days of heartbeats kept whole


def _heartbeat(agent: FakeAgent, i: int) -> dict[str, Any]:
    data = {
        "interval_seconds": 60, "last_seq": agent.seq + 1, "spool_depth": 0, "spool_bytes": 0,
        "oldest_unsent_age_s": 0, "dropped": {"queue_full": 0, "spool_full": 0}, "dead_letters": 0,
        "disk_full": False, "plugins_failed": [], "boot_id": "6f1c1a3e-8d4b-4c69-9a0e-1b2c3d4e5f60",
        "uptime_s": 60.0 * i,
    }  # fmt: skip
    return agent.emit("agent.heartbeat", data=data)


def _security(agent: FakeAgent, i: int) -> dict[str, Any]:
    data = {
        "chars": 12 + i % 50, "mime": ["text/plain"], "app": "zoiper",
        "pii": {"phone": i % 2, "email": 0, "credit_card": 0, "my_number": 0}, "cleared": i % 2 == 1,
    }  # fmt: skip
    return agent.emit("clipboard.copy", "low", data=data)


def _bytes(engine: sa.Engine) -> int:
    """The events table with its indexes after VACUUM: on disk (PostgreSQL), as payload (SQLite)."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            cur.execute("VACUUM FULL events")
            # v6 partitions events by month: the parent holds nothing, its partitions hold it all
            cur.execute("SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('events')")
        else:  # bytes of the rows and index entries: pages hold two heartbeats with room to spare
            cur.execute("VACUUM")
            cur.execute(
                "SELECT sum(payload) FROM dbstat WHERE name IN"
                " (SELECT name FROM sqlite_schema WHERE tbl_name = 'events')"
            )
        return int(cur.fetchone()[0])
    finally:
        raw.close()


def _sql(engine: sa.Engine, statement: str) -> None:
    with db.write(engine) as conn:
        conn.execute(sa.text(statement))


def test_storage_per_booth_year(db_url: str, secret_file: Path) -> None:
    start = 1_800_000_000.0
    clock = Clock(start)
    store = make_store(db_url, clock)
    engine = store.engine
    agent = FakeAgent("m-size", "booth-size-01")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, agent.host_id, agent.name)
        evs = []
        for i in range(BEATS):
            evs.append(_heartbeat(agent, i))
            if i % (BEATS // SECURITY) == 0:
                evs.append(_security(agent, i))
        for lo in range(0, len(evs), 500):
            r = post(c, token, evs[lo : lo + 500])
            assert r.json()["accepted"] == len(evs[lo : lo + 500]), r.text
    pg = engine.dialect.name == "postgresql"
    once = _bytes(engine)
    data_of = "(raw::json)->'data'" if pg else "json_extract(raw, '$.data')"
    _sql(engine, f"UPDATE events SET data = {data_of} WHERE type = 'agent.heartbeat'")  # as v4 stored them
    twice_beats = _bytes(engine)
    _sql(engine, f"UPDATE events SET data = {data_of}")
    twice_all = _bytes(engine)
    _sql(engine, "UPDATE events SET data = NULL")
    clock.now = start + 10 * DAY
    began = time.monotonic()
    report = retention.run(engine, RetentionSection(), clock.now)
    seconds = time.monotonic() - began
    assert report.compacted == {"housekeeping": BEATS, "security": 0}
    beats_compacted = _bytes(engine)
    retention.run(engine, RetentionSection(security_days=1, housekeeping_days=1), clock.now)
    all_compacted = _bytes(engine)

    n = BEATS + SECURITY
    skeleton = all_compacted / n
    security_once = (beats_compacted - BEATS * skeleton) / SECURITY
    beat_once = (once - SECURITY * security_once) / BEATS
    beat_twice = beat_once + (twice_beats - once) / BEATS
    security_twice = security_once + (twice_all - twice_beats) / SECURITY
    per_year_before = YEAR_BEATS * beat_twice + YEAR_SECURITY * security_twice
    per_year_now = (
        (YEAR_BEATS - WHOLE_BEATS) * skeleton + WHOLE_BEATS * beat_once + YEAR_SECURITY * security_once
    )
    figures = {
        "backend": engine.dialect.name,
        "bytes_per_row": {
            "heartbeat_v4": round(beat_twice), "heartbeat_once": round(beat_once),
            "security_v4": round(security_twice), "security_once": round(security_once),
            "skeleton": round(skeleton),
        },
        "booth_year_mb": {"v4": round(per_year_before / 1e6), "v5": round(per_year_now / 1e6)},
        "compaction": {
            "rows_per_second": round(BEATS / seconds), "batches": report.batches,
            "slowest_batch_ms": round(max(report.batch_seconds) * 1000, 1),
        },
    }  # fmt: skip
    print("retention storage", figures)
    assert skeleton < beat_once / 2  # a skeleton is a fraction of a heartbeat
    assert beat_once < beat_twice  # storing once saves
    assert security_once < security_twice
    assert per_year_now < per_year_before / 2
    store.engine.dispose()
