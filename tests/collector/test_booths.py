"""The booths page's reads on SQLite and a real PostgreSQL: keyset pages, search by name/id, state filters
computed in SQL the same way the row's status is computed, and every shown field from the host row."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from boothguard.collector import booths, db, migrations
from boothguard.collector.queries import BadQuery
from boothguard.collector.schema import events, hosts
from tests.collector.conftest import SECRET
from tests.collector.helpers import Clock, FakeAgent, client, enroll, make_store, post

NOW = 1_800_000_000.0
SILENCE = booths.Silence(3, 180)
N = 230


def _threshold(row: sa.RowMapping) -> float:
    beat = row["heartbeat_seconds"]
    return float(beat) * 3 if beat else 180.0


def _fleet(engine: Engine) -> dict[str, set[str]]:
    """N booths; returns the ids expected in each state."""
    want: dict[str, set[str]] = {"silent": set(), "away": set(), "chain": set()}
    rows = []
    for i in range(N):
        hid = f"bt-{i}"
        row = {
            "id": hid, "name": f"Booth {i:03d}", "token_hash": f"{i:064d}", "enrolled_at": NOW - 999,
            "last_seen": NOW - 5, "heartbeat_seconds": 10.0, "state": "online", "away": i % 7 == 0,
            "chain_status": "gap" if i % 11 == 0 else ("pending" if i % 23 == 0 else "ok"),
        }  # fmt: skip
        if i % 13 == 0:  # marked silent by the collector's check
            row["state"] = "silent"
        elif i % 17 == 0:  # overdue (more than 3 x 10 s) but not yet marked: silent all the same
            row["last_seen"] = NOW - 31
        elif i % 19 == 0:  # 29 s: not yet
            row["last_seen"] = NOW - 29
        if i == 5:  # never reported a heartbeat interval: the 180 s default applies
            row |= {"heartbeat_seconds": None, "last_seen": NOW - 100}
        rows.append(row)
        if row["state"] == "silent" or NOW - row["last_seen"] > _threshold(row):
            want["silent"].add(hid)
        if row["away"]:
            want["away"].add(hid)
        if row["chain_status"] != "ok":
            want["chain"].add(hid)
    with db.write(engine) as conn:
        conn.execute(sa.insert(hosts), rows)
    return want


def _engine(db_url: str) -> Engine:
    engine = db.create(db_url)
    migrations.migrate(engine)
    return engine


def _walk(engine: Engine, f: booths.BoothFilter, limit: int) -> list[dict[str, object]]:
    seen: list[dict[str, object]] = []
    after = None
    for _ in range(N + 2):
        got = booths.page(engine, f, NOW, SILENCE, _threshold, after=after, limit=limit)
        assert len(got["hosts"]) <= limit
        seen += got["hosts"]
        after = got["next_cursor"]
        if after is None:
            return seen
    raise AssertionError("pages never ended")


def test_pages_cover_every_booth_once_in_name_order(db_url: str) -> None:
    engine = _engine(db_url)
    _fleet(engine)
    seen = _walk(engine, booths.BoothFilter(), 50)
    assert [h["id"] for h in seen] == [f"bt-{i}" for i in range(N)]  # "Booth 000".."Booth 229"
    first = booths.page(engine, booths.BoothFilter(), NOW, SILENCE, _threshold)
    assert first["matched"] == N
    assert len(first["hosts"]) == booths.PAGE


def test_state_filters_match_the_status_shown(db_url: str) -> None:
    engine = _engine(db_url)
    want = _fleet(engine)
    counts = booths.page(engine, booths.BoothFilter(), NOW, SILENCE, _threshold)["counts"]
    assert counts == {"all": N, **{k: len(v) for k, v in want.items()}}
    for state, ids in want.items():
        seen = _walk(engine, booths.BoothFilter(state=state), 40)
        assert {h["id"] for h in seen} == ids, state
    for h in _walk(engine, booths.BoothFilter(state="silent"), 200):
        assert h["status"] == "silent"  # the SQL filter and the row's own status agree
    assert "bt-19" not in want["silent"]
    assert "bt-17" in want["silent"]


def test_search_by_name_or_id(db_url: str) -> None:
    engine = _engine(db_url)
    _fleet(engine)

    def ids(q: str, state: str | None = None) -> list[str]:
        return [str(h["id"]) for h in _walk(engine, booths.BoothFilter(q=q, state=state), 200)]

    assert ids("booth 12") == [f"bt-{i}" for i in range(120, 130)]  # part of the name, any case
    assert ids("Booth 012") == ["bt-12"]
    assert ids("bt-7") == ["bt-7"] + [f"bt-{i}" for i in range(70, 80)]  # id exact or part
    assert ids("BT-229") == ["bt-229"]
    assert ids("%") == []  # wildcards are literal
    assert ids("_") == []
    assert ids("booth 1", "away") == [f"bt-{i}" for i in range(100, 200) if i % 7 == 0]


def test_bad_input_is_a_clear_error(db_url: str) -> None:
    engine = _engine(db_url)
    with pytest.raises(BadQuery, match="state must be one of"):
        booths.page(engine, booths.BoothFilter(state="asleep"), NOW, SILENCE, _threshold)
    for bad in ("x", "!!!", "W10=", booths.encode_cursor("a", "b")[:-2] + "**", "A" * 2000):
        with pytest.raises(BadQuery, match="bad cursor"):
            booths.page(engine, booths.BoothFilter(), NOW, SILENCE, _threshold, after=bad)
    with pytest.raises(BadQuery, match="limit"):
        booths.page(engine, booths.BoothFilter(), NOW, SILENCE, _threshold, limit=10_000)


def test_what_the_board_shows_comes_from_the_host_row(db_url: str, secret_file: Path) -> None:
    """Heartbeats and session events update the row; with the history gone (compacted by retention)
    the booth still shows its backlog, watcher state, USB mode and last event."""
    clock = Clock(NOW)
    store = make_store(db_url, clock=clock)
    agent = FakeAgent("row-host", name="Row Booth")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, agent.host_id, agent.name)
        batch = [
            agent.emit("agent.started", data={"usb_mode": "audit"}),
            agent.emit("session.started", data={"session": "c1"}),
            agent.emit("session.watcher_missing", "high", {"reason": "watcher gone"}),
            agent.emit("agent.heartbeat", data={"interval_seconds": 20, "spool_depth": 41}),
        ]
        assert post(c, token, batch).status_code == 200
    with db.write(store.engine) as conn:
        conn.execute(sa.delete(events))
    h = booths.one(store.engine, agent.host_id, NOW, _threshold)
    assert h is not None
    assert h["spool_backlog"] == 41
    assert h["usb_mode"] == "audit"
    assert h["watcher"] == {"state": "missing", "since": batch[2]["time"], "reason": "watcher gone"}
    assert h["last_event"] == {"type": "agent.heartbeat", "time": batch[3]["time"]}
    assert h["status"] == "online"
    h = booths.one(store.engine, agent.host_id, NOW + 61, _threshold)  # 3 x 20 s without a word
    assert h is not None
    assert h["status"] == "silent"
    assert booths.one(store.engine, "no-such", NOW, _threshold) is None


def test_api_hosts_pages_when_asked(db_url: str, secret_file: Path) -> None:
    import time

    from boothguard.collector import users
    from tests.collector.test_hosts import basic

    store = make_store(db_url, clock=Clock(NOW))
    _fleet(store.engine)
    users.add_user(store.engine, "vic", "viewer", "vic-password", now=time.time())
    auth = basic("vic", "vic-password")
    with client(store, secret_file) as c:
        assert len(c.get("/v1/hosts", headers=auth).json()["hosts"]) == N  # unchanged without parameters
        seen: list[str] = []
        r = c.get("/v1/hosts", params={"limit": 100, "state": "away"}, headers=auth).json()
        seen += [h["id"] for h in r["hosts"]]
        assert r["matched"] == len(seen) == len([i for i in range(N) if i % 7 == 0])
        assert r["next_cursor"] is None
        page1 = c.get("/v1/hosts", params={"limit": 3, "q": "booth 2"}, headers=auth).json()
        page2 = c.get(
            "/v1/hosts", params={"limit": 3, "q": "booth 2", "cursor": page1["next_cursor"]}, headers=auth
        )
        assert [h["id"] for h in page1["hosts"] + page2.json()["hosts"]] == [
            f"bt-{i}" for i in range(200, 206)
        ]
        bad = c.get("/v1/hosts", params={"state": "asleep"}, headers=auth)
        assert bad.status_code == 400
        assert "state must be one of" in bad.text
        assert c.get("/v1/hosts", params={"cursor": "zz"}, headers=auth).status_code == 400
