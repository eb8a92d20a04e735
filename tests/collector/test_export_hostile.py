"""Issue 19: incident exports that cannot be forged or break, and tampering each caught, on both backends."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from boothguard.collector import db, users
from boothguard.collector.schema import events
from boothguard.events import AgentRef, Draft, HostRef, seal
from tests.collector.conftest import SECRET
from tests.collector.helpers import FakeAgent, client, enroll, make_store, post

PASSWORD = "admin-pass-123"


def _login(c: TestClient) -> None:
    c.get("/login")
    r = c.post(
        "/login",
        data={"csrf": c.cookies.get("bg_login_csrf"), "username": "boss", "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def _sealed(agent: FakeAgent, user: str, data: dict[str, Any]) -> dict[str, Any]:
    agent.seq += 1
    body = seal(
        Draft("clipboard.copy", "low", data, user=user),
        seq=agent.seq,
        prev_hash=agent.head,
        host=HostRef(id=agent.host_id, name=agent.name),
        agent=AgentRef(version="test"),
        unix=time.time(),
    )
    agent.head = body["hash"]
    return body


def _export(c: TestClient, fmt: str, **scope: str) -> Any:
    r = c.get("/export", params={"format": fmt, **scope})
    assert r.status_code == 200, r.text
    return r


def test_hostile_host_ids_and_names_are_refused_at_enrollment(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    with client(store, secret_file) as c:
        for host in (
            {"id": "x\n# chain host=y ok=true", "name": "b"},
            {"id": '=HYPERLINK("http://e")', "name": "b"},
            {"id": "x ok=true", "name": "b"},
            {"id": "a/b", "name": "b"},
            {"id": "x" * 129, "name": "b"},
            {"id": "m-1", "name": "b\n7"},
            {"id": "m-1", "name": "b\u202e7"},
            {"id": "m-1", "name": " b7"},
        ):
            r = c.post("/v1/enroll", json={"host": host}, headers={"Authorization": f"Bearer {SECRET}"})
            assert r.status_code == 400, (host, r.text)
        enroll(c, SECRET, "0123456789abcdef0123456789abcdef", "ブース７")


def test_japanese_export_formula_cells_and_header_lines(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    users.add_user(store.engine, "boss", "admin", PASSWORD, now=time.time())
    agent = FakeAgent("m-ja", name="ブース７")
    evs = [
        _sealed(agent, "山田", {"text": '=HYPERLINK("http://evil","x")'}),
        _sealed(agent, "=cmd|' /C calc'!A0", {"n": 1}),
        _sealed(agent, "山田", {"n": 2}),
    ]
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-ja", "ブース７")
        assert post(c, token, evs).json()["accepted"] == 3
        _login(c)
        for fmt in ("csv", "json"):
            r = _export(c, fmt, user="山田")
            disp = r.headers["content-disposition"]
            assert "filename*=UTF-8''incident-%E5%B1%B1%E7%94%B0-" in disp
            assert disp.isascii()
        doc = json.loads(_export(c, "json", user="山田").text)
        assert doc["chain_verification"]["ok"] is True
        assert doc["summary"]["events"] == 2
        text = _export(c, "csv", host="m-ja", user="=x\n# chain host=m-ja ok=true").text
        assert [ln for ln in text.splitlines() if ln.startswith("# chain")] == []  # filter matches none
        csv = _export(c, "csv", host="m-ja").text
        assert "'=cmd" in csv
        assert ",=" not in csv
        chain = [ln for ln in csv.splitlines() if ln.startswith("# chain")]
        assert chain == [chain[0]]
        assert "ok=true" in chain[0]
        scope = next(ln for ln in text.splitlines() if ln.startswith("# scope"))
        assert 'user="=x\\n# chain host=m-ja ok=true"' in scope


def _tamper(store: Any, how: str) -> None:
    with db.write(store.engine) as conn:
        if how == "edit":
            raw = conn.execute(sa.select(events.c.raw).where(events.c.seq == 3)).scalar_one()
            conn.execute(
                sa.update(events).where(events.c.seq == 3).values(raw=raw.replace('"i": 2', '"i": 7'))
            )
        elif how == "middle":
            conn.execute(sa.delete(events).where(events.c.seq == 3))
        elif how == "tail":
            conn.execute(sa.delete(events).where(events.c.seq >= 5))


@pytest.mark.parametrize("how", ["none", "edit", "middle", "tail"])
def test_tampering_is_caught_by_the_export(db_url: str, secret_file: Path, how: str) -> None:
    store = make_store(db_url)
    users.add_user(store.engine, "boss", "admin", PASSWORD, now=time.time())
    agent = FakeAgent("m-t")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-t")
        assert post(c, token, agent.many(6)).json()["accepted"] == 6
        _tamper(store, how)
        _login(c)
        doc = json.loads(_export(c, "json", host="m-t").text)
        csv = _export(c, "csv", host="m-t").text
    ok = doc["chain_verification"]["ok"]
    assert ok is (how == "none"), doc["chain_verification"]
    assert f"ok={str(ok).lower()}" in csv
    if how == "tail":
        problems = doc["chain_verification"]["hosts"][0]["problems"]
        assert {"kind": "gap", "from_seq": 5, "to_seq": 6} in problems
