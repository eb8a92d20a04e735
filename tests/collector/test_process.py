"""The real server as subprocesses: CLI user add and enroll, TLS, background silence, and two collector
processes on one PostgreSQL ingesting overlapping batches concurrently."""

from __future__ import annotations

import gc
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from boothguard.collector import db
from boothguard.collector.schema import alerts, events, hosts
from boothguard.collector.server import settle_heap
from tests.alerts.servers import make_cert
from tests.collector.helpers import FakeAgent, gz, ndjson
from tests.collector.pg import PgCluster
from tests.collector.proc import CollectorProcess
from tests.helpers.agent import write_config


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "boothguard", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_user_add_enroll_and_tls_end_to_end(tmp_path: Path, secret_file: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cert = make_cert(tmp_path)
    with CollectorProcess(tmp_path, url, secret_file, tls_cert=str(cert.cert), tls_key=str(cert.key)) as coll:
        done = cli("collector", "--config", str(coll.config), "user", "add", "ana", "--role", "analyst")
        assert done.returncode == 0, done.stderr
        password = done.stdout.split(": ", 1)[1].strip()
        given = cli("collector", "user", "add", "vic", "--role", "viewer", "--config", str(coll.config),
                    stdin="vic-password\n")  # fmt: skip
        assert given.returncode == 0, given.stderr
        assert "vic-password" not in given.stdout
        again = cli(
            "collector", "user", "add", "vic", "--role", "viewer", "--config", str(coll.config), stdin="x" * 9
        )
        assert again.returncode == 1
        assert "already exists" in again.stderr

        machine_id = tmp_path / "machine-id"
        machine_id.write_text("0123456789abcdef0123456789abcdef\n")
        agent_cfg = write_config(
            tmp_path / "agent.toml",
            {
                "agent": {
                    "state_dir": str(tmp_path / "state"),
                    "machine_id_file": str(machine_id),
                    "host_name": "b7",
                },
                "ship": {"ca_file": str(cert.cert)},
            },
        )
        enrolled = cli(
            "enroll", "--collector", coll.url, "--secret-file", str(secret_file), "--config", str(agent_cfg)
        )
        assert enrolled.returncode == 0, enrolled.stderr
        token_file = tmp_path / "state" / "host.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        bad = tmp_path / "bad.secret"
        bad.write_text("nope")
        refused = cli(
            "enroll", "--collector", coll.url, "--secret-file", str(bad), "--config", str(agent_cfg)
        )
        assert refused.returncode == 1
        assert token_file.read_text().strip() == token  # a failed enrollment keeps the old token

        agent = FakeAgent("0123456789abcdef0123456789abcdef", "b7")
        with httpx.Client(verify=str(cert.cert), timeout=10) as http:
            r = http.post(
                coll.url + "/v1/events",
                content=gz(ndjson(agent.many(5))),
                headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"},
            )
            assert r.json()["accepted"] == 5
            hosts_view = http.get(coll.url + "/v1/hosts", auth=("ana", password)).json()["hosts"]
            assert [(h["id"], h["name"], h["status"]) for h in hosts_view] == [
                (agent.host_id, "b7", "online")
            ]
            assert http.get(coll.url + "/v1/events", auth=("vic", "vic-password")).status_code == 200
    assert coll.proc is not None
    assert coll.proc.returncode == 0


def test_background_task_reports_a_silent_host(tmp_path: Path, secret_file: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with CollectorProcess(
        tmp_path, url, secret_file, silence_default_seconds=1, silence_check_seconds=0.2
    ) as coll:
        token = httpx.post(
            coll.url + "/v1/enroll",
            json={"host": {"id": "m-1", "name": "b1"}},
            headers={"Authorization": "Bearer s3cret-enroll"},
        ).json()["token"]
        agent = FakeAgent("m-1", "b1")
        r = httpx.post(
            coll.url + "/v1/events",
            content=ndjson([agent.emit("agent.stopping", data={"reason": "shutdown"})]),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.json()["accepted"] == 1
        engine = db.create(url)
        deadline = time.monotonic() + 15
        found = None
        while time.monotonic() < deadline and found is None:
            with db.read(engine) as conn:
                found = conn.execute(
                    sa.select(alerts.c.data).where(alerts.c.event_type == "collector.host.silent")
                ).scalar()
            time.sleep(0.1)
        assert found is not None, coll.output()
        assert found["reason"] == "host_shutdown"
        assert '"host_silent"' in "\n".join(coll.lines)


@pytest.mark.slow
def test_two_collectors_on_one_postgresql_store_each_event_once(
    tmp_path: Path, secret_file: Path, pg_cluster: PgCluster
) -> None:
    url = pg_cluster.new_database()
    n_hosts, n_events, batch = 3, 1500, 250
    agents = [FakeAgent(f"m-{i}", f"booth-{i}") for i in range(n_hosts)]
    for a in agents:
        a.many(n_events)
    settings = {"chain_gap_grace_seconds": 600, "max_ingests_per_host": 4, "max_concurrent_ingests": 16}
    with (
        CollectorProcess(tmp_path, url, secret_file, **settings) as c1,
        CollectorProcess(tmp_path, url, secret_file, **settings) as c2,
    ):
        tokens = {}
        for a in agents:
            tokens[a.host_id] = httpx.post(
                c1.url + "/v1/enroll",
                json={"host": {"id": a.host_id, "name": a.name}},
                headers={"Authorization": "Bearer s3cret-enroll"},
            ).json()["token"]
        # Overlapping windows, every event sent at least twice, shuffled, to both processes at once.
        jobs = []
        for a in agents:
            for start in range(0, n_events, batch // 2):
                jobs.append((a, a.events[start : start + batch]))
        jobs = jobs + jobs[::3]
        random.Random(7).shuffle(jobs)
        totals = {"accepted": 0, "duplicates": 0}
        errors: list[str] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            target = (c1, c2)[k % 2]
            with httpx.Client(timeout=60) as http:
                for i in range(k, len(jobs), 8):
                    a, evs = jobs[i]
                    for _attempt in range(50):
                        r = http.post(
                            target.url + "/v1/events",
                            content=gz(ndjson(evs)),
                            headers={
                                "Authorization": f"Bearer {tokens[a.host_id]}",
                                "Content-Encoding": "gzip",
                            },
                        )
                        if r.status_code in (429, 503):
                            time.sleep(0.05)
                            continue
                        break
                    with lock:
                        if r.status_code != 200 or r.json()["rejected"]:
                            errors.append(f"{r.status_code} {r.text[:200]}")
                            return
                        totals["accepted"] += r.json()["accepted"]
                        totals["duplicates"] += r.json()["duplicates"]

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        assert not any(t.is_alive() for t in threads)
        assert errors == [], (errors, c1.output(), c2.output())
    assert totals["accepted"] == n_hosts * n_events
    assert totals["accepted"] + totals["duplicates"] == sum(len(evs) for _, evs in jobs)
    engine = db.create(url)
    with db.read(engine) as conn:
        for a in agents:
            rows = conn.execute(
                sa.select(events.c.seq, events.c.id)
                .where(events.c.host_id == a.host_id)
                .order_by(events.c.seq)
            ).all()
            assert [tuple(r) for r in rows] == [(e["seq"], e["id"]) for e in a.events]
        state = conn.execute(
            sa.select(hosts.c.id, hosts.c.chain_seq, hosts.c.chain_hash, hosts.c.max_seq)
        ).all()
        assert sorted(tuple(s) for s in state) == sorted(
            (a.host_id, n_events, a.events[-1]["hash"], n_events) for a in agents
        )
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts)).scalar() == 0
    engine.dispose()
    assert os.path.exists(tmp_path)


def test_sighup_applies_a_valid_config_and_refuses_an_invalid_one(tmp_path: Path, secret_file: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with CollectorProcess(tmp_path, url, secret_file, max_concurrent_ingests=1) as coll:
        assert coll.proc is not None
        original = coll.config.read_text()
        coll.config.write_text(original.replace("max_concurrent_ingests = 1", "max_concurrent_ingests = 5"))
        coll.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any('"config_reloaded"' in x for x in coll.lines):
            time.sleep(0.05)
        assert any('"config_reloaded"' in x for x in coll.lines), coll.output()
        coll.config.write_text(original + "\nbogus_key = 1\n")
        coll.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any('"config_rejected"' in x for x in coll.lines):
            time.sleep(0.05)
        assert any('"config_rejected"' in x and "bogus_key" in x for x in coll.lines), coll.output()
        assert httpx.get(coll.url + "/healthz").status_code == 200
    assert coll.proc.returncode == 0


def test_settle_heap_exempts_the_startup_heap_from_collection() -> None:
    assert gc.get_freeze_count() == 0
    try:
        settle_heap()
        assert gc.get_freeze_count() > 10000  # modules, classes, the app: all of startup
        assert gc.isenabled()
    finally:
        gc.unfreeze()
