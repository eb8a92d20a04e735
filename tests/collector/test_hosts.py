"""Silence detection, host state, remote commands and their acknowledgement."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from boothguard.collector import db, users
from boothguard.collector.schema import alerts, audit_log, commands
from tests.collector.conftest import SECRET
from tests.collector.helpers import Clock, FakeAgent, client, enroll, make_store, post


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def silent_alerts(store: Any) -> list[dict[str, Any]]:
    with db.read(store.engine) as conn:
        q = sa.select(alerts).where(alerts.c.event_type == "collector.host.silent")
        return [dict(r) for r in conn.execute(q).mappings()]


def test_silence_threshold_follows_the_heartbeat_and_names_the_reason(db_url: str, secret_file: Path) -> None:
    clock = Clock()
    store = make_store(db_url, clock=clock)
    a, b, c_ = FakeAgent("m-a", "booth-a"), FakeAgent("m-b", "booth-b"), FakeAgent("m-c", "booth-c")
    with client(store, secret_file) as c:
        tokens = {x.host_id: enroll(c, SECRET, x.host_id) for x in (a, b, c_)}
        post(c, tokens["m-a"], [a.emit("agent.heartbeat", data={"interval_seconds": 10, "spool_backlog": 7})])
        post(c, tokens["m-b"], [b.emit("agent.stopping", data={"reason": "shutdown"})])
        post(c, tokens["m-c"], [c_.emit("agent.stopping", data={"reason": "sigterm"})])
    clock.now += 31  # past 3 x 10 s for m-a, not yet 180 s for the others
    store.check_silence()
    [only] = silent_alerts(store)
    assert only["host_id"] == "m-a"
    assert only["data"]["reason"] == "killed_or_network_lost"
    assert only["data"]["threshold_seconds"] == 30
    clock.now += 200
    store.check_silence()
    store.check_silence()  # once per silence, not per check
    reasons = {r["host_id"]: r["data"]["reason"] for r in silent_alerts(store)}
    assert reasons == {"m-a": "killed_or_network_lost", "m-b": "host_shutdown", "m-c": "clean_stop"}


def test_hosts_view_and_remote_command_round_trip(db_url: str, secret_file: Path) -> None:
    clock = Clock(time.time())
    store = make_store(db_url, clock=clock)
    users.add_user(store.engine, "boss", "admin", "boss-password", now=clock.now)
    users.add_user(store.engine, "vic", "viewer", "vic-password", now=clock.now)
    agent = FakeAgent("m-1")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        post(c, token, [agent.emit("agent.heartbeat", data={"interval_seconds": 60, "spool_backlog": 3})])
        post(c, token, [agent.emit("away.started"), agent.emit("screen.locked")])
        [host] = c.get("/v1/hosts", headers=basic("vic", "vic-password")).json()["hosts"]
        assert (host["status"], host["away"], host["locked"], host["spool_backlog"]) == (
            "online",
            True,
            True,
            3,
        )
        assert host["chain"]["status"] == "ok"

        assert (
            c.post(
                "/v1/hosts/m-1/commands", json={"type": "lock"}, headers=basic("vic", "vic-password")
            ).status_code
            == 403
        )
        assert (
            c.post(
                "/v1/hosts/nope/commands", json={"type": "lock"}, headers=basic("boss", "boss-password")
            ).status_code
            == 404
        )
        r = c.post(
            "/v1/hosts/m-1/commands",
            json={"type": "lock", "reason": "security"},
            headers=basic("boss", "boss-password"),
        )
        assert r.status_code == 201
        cmd = r.json()
        assert cmd["type"] == "lock"
        # Delivered in every answer until acknowledged.
        for _ in range(2):
            answer = post(c, token, [agent.emit("agent.heartbeat", data={"interval_seconds": 60})]).json()
            assert answer["commands"] == [{"id": cmd["id"], "type": "lock", "reason": "security"}]
        ack = agent.emit("agent.command_ack", data={"command_id": cmd["id"], "status": "done"})
        assert post(c, token, [ack]).json()["commands"] == []
        assert post(c, token, [agent.emit("agent.heartbeat")]).json()["commands"] == []

        clock.now += 4000
        [host] = c.get("/v1/hosts", headers=basic("vic", "vic-password")).json()["hosts"]
        assert (host["status"], host["silent_reason"]) == ("silent", "killed_or_network_lost")
    with db.read(store.engine) as conn:
        row = conn.execute(sa.select(commands)).mappings().one()
        assert (row["status"], row["delivered_count"]) == ("done", 2)
        actions = conn.execute(sa.select(audit_log.c.actor, audit_log.c.action)).all()
    assert ("boss", "command.create") in actions


def test_unacknowledged_commands_expire(db_url: str, secret_file: Path) -> None:
    clock = Clock(time.time())
    store = make_store(db_url, clock=clock, command_ttl_seconds=60)
    agent = FakeAgent("m-1")
    assert store.add_command("m-1", "lock", {}, "boss") is None
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1")
        cmd = store.add_command("m-1", "lock", {}, "boss")
        assert cmd is not None
        assert post(c, token, agent.many(1)).json()["commands"] == [{"id": cmd["id"], "type": "lock"}]
        clock.now += 61
        assert post(c, token, agent.many(1)).json()["commands"] == []
