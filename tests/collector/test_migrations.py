"""Versioned schema: an upgrade from v1 keeps every row, and the result matches the current tables."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from boothguard.collector import db, migrations
from boothguard.collector.schema import LATEST, META


def test_upgrade_from_v1_keeps_data_and_matches_the_schema(db_url: str) -> None:
    engine = db.create(db_url)
    assert migrations.migrate(engine, target=1) == 0
    with db.write(engine) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO hosts (id, name, token_hash, enrolled_at, state, chain_seq, chain_hash, max_seq,"
                " chain_status) VALUES ('m-1', 'booth', :h, 1.0, 'online', 1, :z, 1, 'ok')"
            ),
            {"h": "a" * 64, "z": "0" * 64},
        )
        conn.execute(
            sa.text(
                "INSERT INTO events"
                " (host_id, seq, id, time, type, severity, prev_hash, hash, data, raw, received)"
                " VALUES ('m-1', 1, 'id-1', '2026-01-01T00:00:00.000Z', 'agent.started', 'info', :z, :h,"
                " '{\"a\": 1}', '{}', 1.0)"
            ),
            {"h": "b" * 64, "z": "0" * 64},
        )
    with db.read(engine) as conn:
        assert migrations.current_version(conn) == 1
        assert not sa.inspect(conn).has_table("api_sessions")
    assert migrations.migrate(engine) == 1
    assert migrations.migrate(engine) == LATEST  # idempotent
    with db.read(engine) as conn:
        assert migrations.current_version(conn) == LATEST
        row = conn.execute(sa.text("SELECT name, token_hash, spool_backlog FROM hosts")).one()
        assert tuple(row) == ("booth", "a" * 64, None)
        ev = conn.execute(sa.text("SELECT seq, type, data FROM events")).one()
        assert (ev[0], ev[1]) == (1, "agent.started")
        inspector = sa.inspect(conn)
        for table in META.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name)}
            assert have == {c.name for c in table.columns}, table.name
        indexes = {i["name"] for i in inspector.get_indexes("events")}
        assert {"ix_events_host_time", "ix_events_type_time", "ix_events_user_time"} <= indexes


def test_concurrent_first_start_migrates_once(db_url: str) -> None:
    engines = [db.create(db_url) for _ in range(3)]
    errors: list[BaseException] = []

    def go(engine: sa.Engine) -> None:
        try:
            migrations.migrate(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with db.read(engines[0]) as conn:
        assert conn.execute(sa.text("SELECT count(*), max(version) FROM schema_version")).one() == (1, LATEST)
