"""Central policy end to end: a real collector process pushes a [usb] rule to a real agent (umockdev); a
headset that was blocked is then allowed, and a bad policy forced into the DB is refused by the agent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
            applied = agent.wait_event(lambda e: e["type"] == "agent.policy_applied", timeout=60)
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
            rejected = agent.wait_event(lambda e: e["type"] == "agent.config_rejected", timeout=60)
            assert rejected["data"]["version"] == 2
            assert "usb.mode" in rejected["data"]["reason"]
            assert digest in dropin.read_text()
            status = api.get("/v1/policy/status").json()["hosts"]
            assert status[0]["applied_version"] == 1
            assert status[0]["behind"]
        finally:
            agent.stop()
