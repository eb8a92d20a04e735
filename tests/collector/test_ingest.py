"""Enrollment and ingest through the real app on SQLite and a real PostgreSQL."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import sqlalchemy as sa

from boothguard.collector import db
from boothguard.collector.schema import audit_log, events, hosts
from tests.collector.conftest import SECRET
from tests.collector.helpers import FakeAgent, client, enroll, gz, make_store, ndjson, post


def stored(store, host_id: str) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    with db.read(store.engine) as conn:
        q = sa.select(events.c.seq, events.c.id).where(events.c.host_id == host_id).order_by(events.c.seq)
        return [(int(s), i) for s, i in conn.execute(q)]


def test_enroll_then_ingest_stores_each_event_once(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    agent = FakeAgent("m-1")
    batch = agent.many(20)
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        r = post(c, token, batch[:12])
        assert r.status_code == 200
        assert r.json() == {"accepted": 12, "duplicates": 0, "rejected": [], "commands": []}
        r = post(c, token, batch[8:], gzipped=False)  # overlap: 8..11 re-sent
        assert r.json() == {"accepted": 8, "duplicates": 4, "rejected": [], "commands": []}
    assert stored(store, "m-1") == [(e["seq"], e["id"]) for e in batch]
    with db.read(store.engine) as conn:
        host = conn.execute(sa.select(hosts)).mappings().one()
        assert (host["chain_seq"], host["chain_hash"], host["chain_status"]) == (20, batch[-1]["hash"], "ok")
        assert conn.execute(sa.select(audit_log.c.action)).scalars().all() == ["host.enroll"]


def test_enrollment_needs_the_secret_and_reenrolling_rotates_the_token(
    db_url: str, secret_file: Path
) -> None:
    store = make_store(db_url)
    agent = FakeAgent("m-1")
    with client(store, secret_file) as c:
        body = {"host": {"id": "m-1", "name": "b"}}
        assert c.post("/v1/enroll", json=body).status_code == 401
        assert c.post("/v1/enroll", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        bad = c.post("/v1/enroll", json={"host": {"id": ""}}, headers={"Authorization": f"Bearer {SECRET}"})
        assert bad.status_code == 400
        old = enroll(c, SECRET, "m-1")
        new = enroll(c, SECRET, "m-1")
        assert old != new
        assert post(c, old, agent.many(1)).status_code == 401
        assert post(c, new, agent.events).status_code == 200
    with db.read(store.engine) as conn:
        row = conn.execute(sa.select(hosts.c.token_hash)).one()
        assert new not in row[0]
        assert len(row[0]) == 64


def test_enrollment_disabled_without_secret_file(db_url: str, tmp_path: Path) -> None:
    store = make_store(db_url)
    with client(store, tmp_path / "missing.secret") as c:
        r = c.post(
            "/v1/enroll", json={"host": {"id": "m", "name": "n"}}, headers={"Authorization": "Bearer "}
        )
        assert r.status_code == 403


def test_tokens_only_post_their_own_hosts_events(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    a, b = FakeAgent("m-a"), FakeAgent("m-b")
    with client(store, secret_file) as c:
        token_a = enroll(c, SECRET, "m-a")
        enroll(c, SECRET, "m-b")
        assert post(c, "nope", a.many(1)).status_code == 401
        r = c.post("/v1/events", content=ndjson(a.events))
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        mixed = [*a.many(2), *b.many(1)]
        assert post(c, token_a, mixed).status_code == 403
        assert post(c, token_a, b.events).status_code == 403
    assert stored(store, "m-a") == []
    assert stored(store, "m-b") == []


def test_bad_lines_are_rejected_alone(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url, max_event_bytes=2048)
    agent = FakeAgent("m-1")
    good = agent.many(3)
    tampered = dict(agent.emit(data={"x": 1}))
    tampered["data"] = {"x": 2}  # content changed after sealing
    huge = agent.emit(data={"pad": "x" * 4000})
    lines = [
        json.dumps(good[0]).encode(),
        b"{not json",
        json.dumps(good[1]).encode(),
        json.dumps({**good[2], "severity": "apocalyptic"}).encode(),
        json.dumps(good[2]).encode(),
        json.dumps(tampered).encode(),
        json.dumps(huge).encode(),
        b"\xff\xfe\x00",
        b"[]",
    ]
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        r = c.post(
            "/v1/events", content=b"\n".join(lines) + b"\n", headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code == 200
    answer = r.json()
    assert (answer["accepted"], answer["duplicates"]) == (3, 0)
    assert [x["index"] for x in answer["rejected"]] == [1, 3, 5, 6, 7, 8]
    assert "hash" in answer["rejected"][2]["error"]
    assert "larger" in answer["rejected"][3]["error"]
    assert stored(store, "m-1") == [(e["seq"], e["id"]) for e in good]


def test_gzip_bomb_and_oversized_bodies_get_413(db_url: str, secret_file: Path) -> None:
    store = make_store(
        db_url, max_body_bytes=64 * 1024, max_decompressed_bytes=256 * 1024, max_events_per_request=50
    )
    agent = FakeAgent("m-1")
    bomb = gzip.compress(b"\n" * (200 * 1024 * 1024), 9)  # ~200 KB compressed, 200 MiB inflated
    assert len(bomb) < 64 * 1024 * 4
    small_bomb = gzip.compress(b" " * (50 * 1024 * 1024), 9)
    assert len(small_bomb) < 64 * 1024
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        auth = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
        assert c.post("/v1/events", content=small_bomb, headers=auth).status_code == 413
        assert c.post("/v1/events", content=bomb, headers=auth).status_code == 413
        plain = {"Authorization": f"Bearer {token}"}
        assert c.post("/v1/events", content=b"x" * (65 * 1024), headers=plain).status_code == 413
        assert post(c, token, agent.many(51)).status_code == 413
        assert c.post("/v1/events", content=b"\x1f\x8bnot gzip", headers=auth).status_code == 400
        assert c.post("/v1/events", content=gz(ndjson(agent.events))[:-12], headers=auth).status_code == 400
        r = c.post("/v1/events", content=b"", headers=plain)
        assert r.json() == {"accepted": 0, "duplicates": 0, "rejected": [], "commands": []}
        # Several gzip members are one body, as curl and some proxies send them.
        two = gz(ndjson(agent.events[:30])) + gz(ndjson(agent.events[30:50]))
        assert c.post("/v1/events", content=two, headers=auth).json()["accepted"] == 50
    assert len(stored(store, "m-1")) == 50


def test_each_stored_column_holds_its_own_field(db_url: str, secret_file: Path) -> None:
    """SQLite stores through the driver's executemany of tuples: a column order slip would swap fields."""
    store = make_store(db_url)
    agent = FakeAgent("m-cols", "booth-cols")
    batch = [agent.emit("clipboard.copy", "medium", {"length": 3}, user="agent7") for _ in range(3)]
    with client(store, secret_file) as c:
        assert post(c, enroll(c, SECRET, "m-cols"), batch).json()["accepted"] == 3
    cols = ("host_id", "seq", "id", "time", "type", "severity", "user", "prev_hash", "hash")
    with db.read(store.engine) as conn:
        q = sa.select(*(events.c[k] for k in cols), events.c.raw, events.c.received).order_by(events.c.seq)
        rows = conn.execute(q).mappings().all()
    assert [{k: r[k] for k in cols} for r in rows] == [
        {"host_id": "m-cols", **{k: e[k] for k in cols[1:]}} for e in batch
    ]
    assert [json.loads(r["raw"]) for r in rows] == batch
    assert all(isinstance(r["received"], float) and r["received"] > 1e9 for r in rows)
