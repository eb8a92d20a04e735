"""The query API, users and roles, sessions, alert ack/resolve, metrics, health and OpenAPI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from boothguard.collector import db, users
from boothguard.collector.schema import audit_log
from boothguard.collector.schema import users as users_table
from tests.collector.conftest import SECRET
from tests.collector.helpers import FakeAgent, client, enroll, make_store, post
from tests.collector.test_hosts import basic


def test_users_are_hashed_with_argon2id_and_roles_gate_the_api(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    now = time.time()
    for name, role in (("vic", "viewer"), ("ana", "analyst"), ("adm", "admin")):
        users.add_user(store.engine, name, role, f"{name}-password", now=now)
    with pytest.raises(users.UserError):
        users.add_user(store.engine, "vic", "viewer", "another-password", now=now)
    with pytest.raises(users.UserError):
        users.add_user(store.engine, "bad name", "viewer", "password!", now=now)
    with db.read(store.engine) as conn:
        hashes = conn.execute(sa.select(users_table.c.password_hash)).scalars().all()
    assert all(h.startswith("$argon2id$") for h in hashes)
    agent = FakeAgent("m-1", "booth-1")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        post(c, token, [agent.emit("screen.lock_failed", "high")])  # default rule: lock-failed alert
        assert c.get("/v1/events").status_code == 401
        assert c.get("/v1/events", headers=basic("vic", "wrong-password")).status_code == 401
        assert c.get("/v1/events", headers={"Authorization": "Basic !!!"}).status_code == 401
        assert c.get("/v1/events", headers=basic("vic", "vic-password")).status_code == 200
        [alert] = c.get("/v1/alerts", headers=basic("vic", "vic-password")).json()["alerts"]
        assert alert["rule"] == "lock-failed"
        assert (
            c.post(f"/v1/alerts/{alert['id']}/ack", headers=basic("vic", "vic-password")).status_code == 403
        )
        acked = c.post(f"/v1/alerts/{alert['id']}/ack", headers=basic("ana", "ana-password")).json()
        assert (acked["state"], acked["acked_by"]) == ("acked", "ana")
        # A repeat groups into the acked alert.
        post(c, token, [agent.emit("screen.lock_failed", "high")])
        [alert] = c.get("/v1/alerts", headers=basic("vic", "vic-password")).json()["alerts"]
        assert (alert["count"], alert["state"]) == (2, "acked")
        resolved = c.post(f"/v1/alerts/{alert['id']}/resolve", headers=basic("ana", "ana-password")).json()
        assert resolved["state"] == "resolved"
        assert c.post("/v1/alerts/999999/ack", headers=basic("ana", "ana-password")).status_code == 404
        # After resolve, a repeat opens a new alert.
        post(c, token, [agent.emit("screen.lock_failed", "high")])
        states = [
            a["state"] for a in c.get("/v1/alerts", headers=basic("vic", "vic-password")).json()["alerts"]
        ]
        assert states == ["open", "resolved"]
        opened = c.get("/v1/alerts?state=open", headers=basic("vic", "vic-password")).json()["alerts"]
        assert len(opened) == 1
    with db.read(store.engine) as conn:
        actions = conn.execute(sa.select(audit_log.c.actor, audit_log.c.action)).all()
    assert {("ana", "alert.ack"), ("ana", "alert.resolve"), ("cli", "user.add")} <= set(actions)


def test_sessions_give_a_bearer_token(db_url: str) -> None:
    store = make_store(db_url)
    users.add_user(store.engine, "ana", "analyst", "ana-password", now=time.time())
    with client(store) as c:
        r = c.post("/v1/sessions", headers=basic("ana", "ana-password"))
        assert r.status_code == 200
        token = r.json()["token"]
        assert c.get("/v1/hosts", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/v1/hosts", headers={"Authorization": "Bearer not-a-session"}).status_code == 401


def test_event_query_filters_and_cursor(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    users.add_user(store.engine, "vic", "viewer", "vic-password", now=time.time())
    a, b = FakeAgent("m-a", "booth-a"), FakeAgent("m-b", "booth-b")
    auth = basic("vic", "vic-password")
    with client(store, secret_file) as c:
        ta, tb = enroll(c, SECRET, "m-a"), enroll(c, SECRET, "m-b")
        stick = {"vendor_id": "0781", "product_id": "5567"}
        post(c, ta, [a.emit("usb.device.blocked", "high", stick) for _ in range(3)])
        post(c, ta, [a.emit("usb.device.allowed", "info") for _ in range(4)])
        post(c, tb, [b.emit("clipboard.copy", "medium", {"pii": {"phone_jp": 1}}) for _ in range(5)])
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            url = "/v1/events?limit=5" + (f"&cursor={cursor}" if cursor else "")
            page = c.get(url, headers=auth).json()
            seen += [e["id"] for e in page["events"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(e["id"] for e in a.events + b.events)
        assert len(seen) == 12
        got = c.get("/v1/events?host=m-a&type=usb.*", headers=auth).json()["events"]
        assert len(got) == 7
        got = c.get("/v1/events?severity=medium", headers=auth).json()["events"]
        assert {e["type"] for e in got} == {"usb.device.blocked", "clipboard.copy"}
        got = c.get("/v1/events?type=clipboard.copy", headers=auth).json()["events"]
        assert got[0] == b.events[-1]  # the event exactly as sealed
        assert c.get(
            "/v1/events?since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z", headers=auth
        ).json() == {
            "events": [],
            "next_cursor": None,
        }
        assert len(c.get("/v1/events?since=2000-01-01T00:00:00Z", headers=auth).json()["events"]) == 12
        for bad in ("severity=loud", "since=yesterday", "cursor=abc", "limit=0", "limit=100000"):
            assert c.get(f"/v1/events?{bad}", headers=auth).status_code == 400, bad


def test_health_metrics_and_openapi(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    agent = FakeAgent("m-1")
    with client(store, secret_file) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        token = enroll(c, SECRET, "m-1")
        post(c, token, agent.many(3))
        post(c, token, agent.events)
        text = c.get("/metrics").text
        assert 'boothguard_collector_events_total{outcome="accepted"} 3.0' in text
        assert 'boothguard_collector_events_total{outcome="duplicate"} 3.0' in text
        spec = c.get("/openapi.json").json()
        for path in ("/v1/events", "/v1/enroll", "/v1/alerts", "/v1/hosts", "/v1/hosts/{host_id}/commands"):
            assert path in spec["paths"]


def test_a_nul_in_the_url_is_a_clear_400_on_every_database(db_url: str, secret_file: Path) -> None:
    """PostgreSQL cannot compare a string holding NUL: as a filter it used to come back as a 500."""
    store = make_store(db_url)
    users.add_user(store.engine, "vic", "viewer", "vic-password", now=time.time())
    with client(store, secret_file) as c:
        auth = basic("vic", "vic-password")
        for url in (
            "/v1/alerts?host=%00",
            "/v1/events?type=a%00b",
            "/v1/hosts/x%00y/chain",
            "/v1/alerts?st%00=1",
        ):
            r = c.get(url, headers=auth)
            assert (r.status_code, r.json()) == (400, {"error": "NUL character in the URL"}), url
        assert c.get("/v1/alerts?host=%2500", headers=auth).status_code == 200  # a literal "%00" is text
