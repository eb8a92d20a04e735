"""Central policy end to end: a real collector process pushes a [usb] rule to a real agent (umockdev); a
headset that was blocked is then allowed, and a bad policy forced into the DB is refused by the agent."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.usb import descbuild as d

pytestmark = pytest.mark.umockdev
umock = pytest.importorskip("tests.usb.umock", reason="PyGObject with UMockdev typelib not installed")

if not umock.under_wrapper():
    pytest.skip("run under umockdev-wrapper (tests/run.sh does)", allow_module_level=True)

CLI = [sys.executable, "-m", "boothguard"]
RULE = {"id": "headset", "action": "allow", "vendor_id": "1395", "product_id": "0025"}


def test_pushed_rule_allows_a_blocked_headset_and_a_forced_bad_policy_is_refused(tmp_path: Path) -> None:
    from tests.collector.proc import CollectorProcess

    secret = tmp_path / "enroll.secret"
    secret.write_text("s3cret-enroll\n")
    secret.chmod(0o600)
    db_url = f"sqlite:///{tmp_path / 'c.db'}"
    bed = umock.Bed()
    bus = bed.add_bus(1)
    with CollectorProcess(tmp_path, db_url, secret) as coll:
        add = subprocess.run(
            [*CLI, "collector", "user", "add", "adm", "--role", "admin", "--config", str(coll.config)],
            check=False,
            input="adm-password\n",
            text=True,
            capture_output=True,
        )
        assert add.returncode == 0, add.stderr
        api = httpx.Client(base_url=coll.url, auth=("adm", "adm-password"), timeout=30)
        assert api.put("/v1/groups/booths", json={"name_pattern": "booth-*"}).status_code == 200
        (tmp_path / "agent").mkdir()
        agent = umock.Agent(bed, tmp_path / "agent")
        agent.config.write_text(
            agent.config.read_text().replace('collector_url = ""', f'collector_url = "{coll.url}"')
        )
        done = agent.cli("enroll", "--collector", coll.url, "--secret-file", str(secret))
        assert done.returncode == 0, done.stderr
        agent.start()
        try:
            headset = bed.plug(bus, "1-1", 0x1395, 0x0025, [d.STORAGE], product=b"Headset")
            agent.usb_event("usb.device.blocked", "1-1")
            assert bed.attr(headset, "authorized") == "0"
            r = api.put("/v1/groups/booths/policy", json={"usb": {"mode": "enforce", "rules": [RULE]}})
            assert r.status_code == 201, r.text
            digest = r.json()["hash"]
            # Any shipment carries the policy back: a second blocked device makes one.
            bed.plug(bus, "1-3", 0x0781, 0x5567, [d.STORAGE], product=b"Stick")
            applied = wait_collector(api, "agent.policy_applied")
            assert applied["data"]["hash"] == digest
            dropin = agent.config.with_suffix(".d") / "50-collector.toml"
            assert digest in dropin.read_text()
            again = bed.plug(bus, "1-2", 0x1395, 0x0025, [d.STORAGE], product=b"Headset")
            umock.wait_for(lambda: bed.attr(again, "authorized") == "1", timeout=30, what="headset allowed")
            # Refused on the collector, with key and reason...
            bad = {"usb": {"mode": "enforcing"}}
            r = api.put("/v1/groups/booths/policy", json=bad)
            assert r.status_code == 422
            assert r.json()["problems"][0]["key"] == "usb.mode"
            # ...and forced straight into the DB, refused by the agent, which keeps the old policy.
            engine = sa.create_engine(db_url)
            from boothguard.policy import policy_hash

            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO policies (group_name, version, body, hash, created_at, created_by,"
                        " published) VALUES ('booths', 2, :body, :hash, 0, 'forced', 1)"
                    ),
                    {"body": '{"usb": {"mode": "enforcing"}}', "hash": policy_hash(bad)},
                )
            engine.dispose()
            bed.plug(bus, "1-4", 0x0781, 0x5567, [d.STORAGE], product=b"Stick")

            # A write the collector process did not make reaches its policy directory within its reload
            # interval (10 s): keep shipments coming until one carries the forced version back.
            def refused() -> bool:
                if collector_events(api, "agent.config_rejected"):
                    return True
                assert agent.cli("emit", "custom.nudge").returncode == 0
                return False

            umock.wait_for(refused, timeout=60, what="agent.config_rejected at the collector")
            rejected = wait_collector(api, "agent.config_rejected")
            assert rejected["data"]["version"] == 2
            assert "usb.mode" in rejected["data"]["reason"]
            assert digest in dropin.read_text()
            status = api.get("/v1/policy/status").json()["hosts"]
            assert status[0]["applied_version"] == 1
            assert status[0]["behind"]
        finally:
            agent.stop()


LOCAL = """\
[usb]
mode = "audit"

[[usb.rules]]
id = "local-stick"
action = "allow"
vendor_id = "0781"
product_id = "5567"
"""


def collector_events(api: httpx.Client, type_: str) -> list[dict[str, Any]]:
    got = api.get("/v1/events", params={"type": type_, "limit": 500})
    assert got.status_code == 200, got.text
    return list(got.json()["events"])


def wait_collector(
    api: httpx.Client, type_: str, pred: Callable[[dict[str, Any]], bool] = lambda e: True
) -> dict[str, Any]:
    """Wait for an event at the collector (the agent's spool purges what the collector acknowledged)."""
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [e for e in collector_events(api, type_) if pred(e)]
        return bool(found)

    umock.wait_for(seen, timeout=60, what=f"{type_} at the collector")
    return found[0]


def test_a_local_drop_in_overrides_only_what_the_policy_allows(tmp_path: Path) -> None:
    """90-local.toml flips usb.mode to audit and brings its own rules; the policy lets only usb.rules be
    local: the mode is refused (event, `config check`) and enforced, the local rule is honored."""
    from tests.collector.proc import CollectorProcess

    secret = tmp_path / "enroll.secret"
    secret.write_text("s3cret-enroll\n")
    secret.chmod(0o600)
    bed = umock.Bed()
    bus = bed.add_bus(1)
    with CollectorProcess(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", secret) as coll:
        add = subprocess.run(
            [*CLI, "collector", "user", "add", "adm", "--role", "admin", "--config", str(coll.config)],
            check=False,
            input="adm-password\n",
            text=True,
            capture_output=True,
        )
        assert add.returncode == 0, add.stderr
        api = httpx.Client(base_url=coll.url, auth=("adm", "adm-password"), timeout=30)
        assert api.put("/v1/groups/booths", json={"name_pattern": "booth-*"}).status_code == 200
        (tmp_path / "agent").mkdir()
        agent = umock.Agent(bed, tmp_path / "agent")
        agent.config.write_text(
            agent.config.read_text().replace('collector_url = ""', f'collector_url = "{coll.url}"')
        )
        dropins = agent.config.with_suffix(".d")
        dropins.mkdir()
        local = dropins / "90-local.toml"
        local.write_text(LOCAL)
        done = agent.cli("enroll", "--collector", coll.url, "--secret-file", str(secret))
        assert done.returncode == 0, done.stderr
        agent.start()

        def usb(type_: str, port: str) -> dict[str, Any]:
            return wait_collector(api, type_, lambda e: e["data"].get("port") == port)["data"]

        try:
            # No policy yet: the booth runs its local config (audit).
            bed.plug(bus, "1-1", 0x1234, 0x0001, [d.STORAGE], product=b"Unknown")
            assert usb("usb.device.blocked", "1-1")["outcome"] == "would_block"
            body = {"usb": {"mode": "enforce", "rules": [RULE]}, "local_override": ["usb.rules"]}
            r = api.put("/v1/groups/booths/policy", json=body)
            assert r.status_code == 201, r.text
            digest = r.json()["hash"]
            bed.plug(bus, "1-2", 0x1234, 0x0002, [d.STORAGE], product=b"Unknown")  # makes a shipment
            applied = wait_collector(api, "agent.policy_applied")
            assert applied["data"]["hash"] == digest
            refused = wait_collector(api, "agent.config_override_refused")
            assert refused["data"] == {
                "file": str(local),
                "line": 2,
                "key": "usb.mode",
                "policy_version": 1,
                "policy_hash": digest,
            }
            # Still enforced: an unknown stick is blocked; the local rule (an allowed key) lets its stick in.
            other = bed.plug(bus, "1-3", 0x1234, 0x0003, [d.STORAGE], product=b"Unknown")
            assert usb("usb.device.blocked", "1-3")["outcome"] == "blocked"
            assert bed.attr(other, "authorized") == "0"
            stick = bed.plug(bus, "1-4", 0x0781, 0x5567, [d.STORAGE], product=b"Stick")
            assert usb("usb.device.allowed", "1-4")["rule"] == "local-stick"
            umock.wait_for(lambda: bed.attr(stick, "authorized") == "1", timeout=30, what="local rule")
            check = agent.cli("config", "check")
            assert check.returncode == 0, check.stdout + check.stderr
            assert check.stdout.splitlines() == [
                f"{local}:2: usb.mode: local override refused: the collector's policy v1 sets it"
                " and does not list it in local_override",
                "ok (1 local override(s) refused)",
            ]

            # A SIGHUP with the same files reports nothing new: the refusal was reported once. Events
            # ship in order, so once a marker emitted after the reload is in, a new refusal would be too.
            def reloads() -> int:
                return sum(entry.get("event") == "config_reloaded" for entry in agent.logs())

            before = reloads()
            assert agent.proc is not None
            agent.proc.send_signal(signal.SIGHUP)
            umock.wait_for(lambda: reloads() > before, timeout=30, what="SIGHUP reload")
            marked = agent.cli("emit", "custom.after_reload")
            assert marked.returncode == 0, marked.stderr
            wait_collector(api, "custom.after_reload")
            assert len(collector_events(api, "agent.config_override_refused")) == 1
        finally:
            agent.stop()
