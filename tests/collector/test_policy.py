"""Central policy on the collector: groups, validation with the agent's models, versions, audit, delivery."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from boothguard.collector import db, users
from boothguard.collector.schema import audit_log, policies
from tests.collector.conftest import SECRET
from tests.collector.helpers import FakeAgent, client, enroll, make_store, post
from tests.collector.test_hosts import basic

HEADSET = {
    "usb": {
        "mode": "enforce",
        "rules": [{"id": "headset", "action": "allow", "vendor_id": "1395", "product_id": "0025"}],
    }
}


def test_policy_validated_versioned_audited_and_delivered(db_url: str, secret_file: Path) -> None:
    store = make_store(db_url)
    users.add_user(store.engine, "adm", "admin", "adm-password", now=time.time())
    users.add_user(store.engine, "vic", "viewer", "vic-password", now=time.time())
    adm, vic = basic("adm", "adm-password"), basic("vic", "vic-password")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1", "floor2-booth-07")
        agent = FakeAgent("m-1", "floor2-booth-07")
        assert (
            post(c, token, [agent.emit()]).json().get("policy") is None
        )  # no group: the booth runs its local config
        grp = {"name_pattern": "floor2-*"}
        assert c.put("/v1/groups/floor2", json=grp, headers=vic).status_code == 403
        assert c.put("/v1/groups/floor2", json=grp, headers=adm).status_code == 200
        bad = {"usb": {"mode": "enforc", "rules": [{"id": "x", "action": "allow", "bogus": 1}]}, "ship": {}}
        r = c.put("/v1/groups/floor2/policy", json=bad, headers=adm)
        assert r.status_code == 422
        keys = {p["key"]: p["reason"] for p in r.json()["problems"]}
        assert "usb.mode" in keys
        assert "usb.rules.0.bogus" in keys
        assert keys["ship"].startswith("section not")
        r = c.put("/v1/groups/floor2/policy", json={"usb": {"sysfs_root": "/tmp"}}, headers=adm)
        assert r.status_code == 422
        assert r.json()["problems"][0]["key"] == "usb.sysfs_root"
        with db.read(store.engine) as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(policies)).scalar() == 0
        r = c.put("/v1/groups/floor2/policy", json=HEADSET, headers=adm)
        assert r.status_code == 201
        assert r.json()["version"] == 1
        digest = r.json()["hash"]
        delivered = post(c, token, [agent.emit()]).json()["policy"]
        assert (delivered["version"], delivered["hash"], delivered["body"]) == (1, digest, HEADSET)
        status = c.get("/v1/policy/status", headers=vic).json()["hosts"]
        assert status[0]["behind"]
        assert status[0]["policy_version"] == 1
        applied = agent.emit("agent.policy_applied", data={"version": 1, "hash": digest, "group": "floor2"})
        post(c, token, [applied])
        [row] = c.get("/v1/policy/status", headers=vic).json()["hosts"]
        assert (row["applied_version"], row["behind"]) == (1, False)
        v2 = {"usb": {"mode": "audit"}}
        assert c.put("/v1/groups/floor2/policy", json=v2, headers=adm).json()["version"] == 2
        assert c.get("/v1/policy/status", headers=vic).json()["hosts"][0]["behind"]
        # Explicit assignment beats the name pattern; a group without a policy sends none.
        assert c.put("/v1/groups/quiet", json={}, headers=adm).status_code == 200
        assert c.put("/v1/hosts/m-1/group", json={"group": "quiet"}, headers=adm).status_code == 200
        assert c.put("/v1/hosts/m-1/group", json={"group": "nope"}, headers=adm).status_code == 404
        assert post(c, token, [agent.emit()]).json().get("policy") is None
    with db.read(store.engine) as conn:
        rows = conn.execute(
            sa.select(audit_log.c.action, audit_log.c.detail).where(audit_log.c.action == "policy.publish")
        ).all()
    assert [r.detail["version"] for r in rows] == [1, 2]
    assert rows[1].detail["diff"]["usb.mode"] == ["enforce", "audit"]
    assert rows[1].detail["diff"]["usb.rules"][1] is None


def test_groups_match_enrollment_labels_explicit_then_priority_then_label_then_name(
    db_url: str, secret_file: Path
) -> None:
    store = make_store(db_url)
    users.add_user(store.engine, "adm", "admin", "adm-password", now=time.time())
    adm = basic("adm", "adm-password")
    with client(store, secret_file) as c:

        def enroll_with(host_id: str, name: str, labels: object) -> Any:
            return c.post(
                "/v1/enroll",
                json={"host": {"id": host_id, "name": name}, "labels": labels},
                headers={"Authorization": f"Bearer {SECRET}"},
            )

        for bad in (["Site Tokyo"], ["x" * 65], ["ok"] * 17, "site=tokyo"):
            assert enroll_with("m-l", "floor3-01", bad).status_code == 400, bad
        assert enroll_with("m-l", "floor3-01", ["site=tokyo", "site=tokyo", "night"]).status_code == 200
        hosts = c.get("/v1/hosts", headers=adm).json()["hosts"]
        assert next(h for h in hosts if h["id"] == "m-l")["labels"] == ["night", "site=tokyo"]
        assert c.put("/v1/groups/g-bad", json={"label": "Not A Label"}, headers=adm).status_code == 400

        def group() -> str | None:
            rows = c.get("/v1/policy/status", headers=adm).json()["hosts"]
            return next(r["group"] for r in rows if r["host_id"] == "m-l")

        assert c.put("/v1/groups/by-name", json={"name_pattern": "floor3-*"}, headers=adm).status_code == 200
        assert group() == "by-name"
        assert c.put("/v1/groups/tokyo", json={"label": "site=tokyo"}, headers=adm).status_code == 200
        assert group() == "tokyo"  # equal priority: the label chosen at enrollment is more specific
        assert (
            c.put(
                "/v1/groups/by-name", json={"name_pattern": "floor3-*", "priority": 9}, headers=adm
            ).status_code
            == 200
        )
        assert group() == "by-name"  # a higher priority wins
        assert (
            c.put("/v1/groups/night", json={"label": "night", "priority": 9}, headers=adm).status_code == 200
        )
        assert group() == "night"  # equal priority again: the label beats the pattern
        assert c.put("/v1/hosts/m-l/group", json={"group": "tokyo"}, headers=adm).status_code == 200
        assert group() == "tokyo"  # explicit assignment over everything
        assert enroll_with("m-l", "floor3-01", []).status_code == 200  # re-enrolled without labels
        assert c.put("/v1/hosts/m-l/group", json={"group": None}, headers=adm).status_code == 200
        assert group() == "by-name"
    with db.read(store.engine) as conn:
        logged = conn.execute(
            sa.select(audit_log.c.detail).where(audit_log.c.action == "host.enroll")
        ).scalars()
        assert any((d or {}).get("labels") == ["night", "site=tokyo"] for d in logged)


def test_agent_enrolls_with_its_configured_labels(tmp_path: Path, secret_file: Path) -> None:
    import subprocess
    import sys

    from tests.collector.proc import CollectorProcess
    from tests.helpers.agent import write_config

    db_path = tmp_path / "c.db"
    cfg = write_config(
        tmp_path / "agent.toml",
        {
            "agent": {"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run")},
            "ship": {"labels": ["site=osaka", "floor5"]},
        },
    )
    with CollectorProcess(tmp_path, f"sqlite:///{db_path}", secret_file) as coll:
        done = subprocess.run(
            [sys.executable, "-m", "boothguard", "enroll", "--config", str(cfg), "--collector", coll.url,
             "--secret-file", str(secret_file)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    engine = db.create(f"sqlite:///{db_path}")
    with db.read(engine) as conn:
        assert conn.execute(sa.text("SELECT labels FROM hosts")).scalar() in (
            '["floor5", "site=osaka"]',
            '["floor5","site=osaka"]',
        )
    bad = write_config(tmp_path / "bad.toml", {"ship": {"labels": ["Floor 5"]}})
    done = subprocess.run(
        [sys.executable, "-m", "boothguard", "config", "check", "--config", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 78
    assert "ship.labels" in done.stdout + done.stderr


def test_local_override_list_validated_published_delivered_and_audited(
    db_url: str, secret_file: Path
) -> None:
    store = make_store(db_url)
    users.add_user(store.engine, "adm", "admin", "adm-password", now=time.time())
    adm = basic("adm", "adm-password")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-o", "floor4-01")
        agent = FakeAgent("m-o", "floor4-01")
        assert c.put("/v1/groups/floor4", json={"name_pattern": "floor4-*"}, headers=adm).status_code == 200
        bad = {**HEADSET, "local_override": ["usb.rules", "usb.mod", "ship.collector_url", "usb.sysfs_root"]}
        r = c.put("/v1/groups/floor4/policy", json=bad, headers=adm)
        assert r.status_code == 422
        keys = {p["key"]: p["reason"] for p in r.json()["problems"]}
        assert set(keys) == {"local_override.1", "local_override.2", "local_override.3"}
        assert "'usb.mod' is not a key a policy can set" in keys["local_override.1"]
        assert "'usb.sysfs_root' is set by the booth's local config only" in keys["local_override.3"]
        assert (
            c.put("/v1/groups/floor4/policy", json={"local_override": "usb"}, headers=adm).status_code == 422
        )
        good = {**HEADSET, "local_override": ["usb.rules", "lock"]}
        r = c.put("/v1/groups/floor4/policy", json=good, headers=adm)
        assert r.status_code == 201, r.text
        delivered = post(c, token, [agent.emit()]).json()["policy"]
        assert delivered["body"] == good
        assert delivered["hash"] == r.json()["hash"]
        assert c.put("/v1/groups/floor4/policy", json=HEADSET, headers=adm).json()["version"] == 2
    with db.read(store.engine) as conn:
        rows = conn.execute(
            sa.select(audit_log.c.detail).where(audit_log.c.action == "policy.publish")
        ).scalars()
        diffs = [d["diff"] for d in rows]
    assert diffs[0]["local_override"] == [None, ["usb.rules", "lock"]]
    assert diffs[1] == {"local_override": [["usb.rules", "lock"], None]}


def test_status_of_ten_thousand_booths_is_three_queries_and_matches_group_of(db_url: str) -> None:
    from boothguard.collector import policy_store
    from boothguard.collector.schema import group_members, host_groups, host_policy, hosts

    store = make_store(db_url)
    engine = store.engine
    n = 10_000
    with db.write(engine) as conn:
        conn.execute(
            sa.insert(hosts),
            [
                {
                    "id": f"m-{i:05d}",
                    "name": f"floor{i % 3}-{i:05d}",
                    "enrolled_at": 0.0,
                    "labels": ["night"] if i % 7 == 0 else [],
                }
                for i in range(n)
            ],
        )
        conn.execute(
            sa.insert(host_groups),
            [
                {
                    "name": "floor1",
                    "name_pattern": "floor1-*",
                    "label": None,
                    "priority": 0,
                    "created_at": 0.0,
                },
                {"name": "night", "name_pattern": None, "label": "night", "priority": 0, "created_at": 0.0},
                {
                    "name": "vip",
                    "name_pattern": "floor2-010*",
                    "label": None,
                    "priority": 5,
                    "created_at": 0.0,
                },
                {"name": "quiet", "name_pattern": None, "label": None, "priority": 0, "created_at": 0.0},
            ],
        )
        conn.execute(
            sa.insert(group_members), [{"host_id": f"m-{i:05d}", "group_name": "quiet"} for i in (3, 14)]
        )
        conn.execute(sa.insert(host_policy), {"host_id": "m-00001", "applied_version": 2})
    for group in ("floor1", "night", "vip"):
        for _ in range(2):
            assert isinstance(
                policy_store.put_policy(engine, group, {"usb": {"mode": "audit"}}, actor="t", now=0.0), dict
            )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", count)
    started = time.perf_counter()
    rows = policy_store.status(engine)
    took = time.perf_counter() - started
    sa.event.remove(engine, "before_cursor_execute", count)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 3, statements
    assert len(rows) == n
    print(f"policy status of {n} booths: {took * 1000:.0f} ms")  # the README's figure
    by_id = {r["host_id"]: r for r in rows}
    # The same answer as the per-booth path the ingest uses, for a sample of every kind of booth.
    with db.read(engine) as conn:
        for i in (0, 1, 2, 3, 7, 14, 21, 100, 1000, 1001, 1004, 9999):
            host_id = f"m-{i:05d}"
            assert by_id[host_id]["group"] == policy_store.group_of(conn, host_id), host_id
    assert by_id["m-00001"]["group"] == "floor1"
    assert (by_id["m-00001"]["applied_version"], by_id["m-00001"]["behind"]) == (2, False)
    assert by_id["m-00007"]["group"] == "night"  # floor1 pattern, night label, equal priority: the label
    assert by_id["m-00014"]["group"] == "quiet"  # explicit, and quiet has no policy
    assert (by_id["m-00014"]["policy_version"], by_id["m-00014"]["behind"]) == (None, False)
    assert by_id["m-01000"]["group"] == "floor1"
    assert by_id["m-01001"]["group"] == "vip"  # labelled night too: the higher priority wins
    assert by_id["m-00002"]["group"] is None
    assert by_id["m-01004"]["name"] == "floor2-01004"
    assert by_id["m-01004"]["group"] == "vip"  # priority beats everything but explicit
    assert by_id["m-01004"]["behind"]
    assert by_id["m-01004"]["policy_version"] == 2
