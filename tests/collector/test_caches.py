"""The ingest path's in-process caches (issue 17), on the real collector app over a real database: the agent
token cache and the policy directory. Each: invalidated at once by this process's own writes, stale at most
its ttl on a second collector sharing the database, and bounded in size. And PostgreSQL restarting under a
collector that no longer pings every pooled connection: one 503 at most, then ingest as before.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from boothguard.collector import policy_directory, token_cache, users
from boothguard.collector.policy_directory import PolicyDirectory
from boothguard.collector.token_cache import TokenCache
from tests.collector import pg
from tests.collector.conftest import SECRET
from tests.collector.helpers import Clock, FakeAgent, client, enroll, make_store, post
from tests.collector.test_hosts import basic
from tests.collector.test_policy import HEADSET


def _admin(store_engine: object) -> dict[str, str]:
    users.add_user(store_engine, "adm", "admin", "adm-password", now=time.time())  # type: ignore[arg-type]
    return basic("adm", "adm-password")


def test_token_cache_forgets_a_rotated_token_here_at_once_and_elsewhere_within_its_ttl(
    db_url: str, secret_file: Path
) -> None:
    here, there = make_store(db_url), make_store(db_url)  # two collectors on one database
    tick = Clock(0.0)
    cache_here = token_cache.install(TokenCache(here.engine, ttl=60.0, clock=tick))
    cache_there = token_cache.install(TokenCache(there.engine, ttl=60.0, clock=tick))
    agent = FakeAgent("m-1")
    with client(here, secret_file) as a, client(there, secret_file) as b:
        old = enroll(a, SECRET, "m-1")
        assert post(a, old, [agent.emit()]).status_code == 200
        assert post(b, old, [agent.emit()]).status_code == 200
        assert len(cache_here) == len(cache_there) == 1  # verified once each, then from memory
        new = enroll(a, SECRET, "m-1")  # the token is rotated through collector `here`
        assert post(a, old, [agent.emit()]).status_code == 401  # here: at once
        assert post(a, new, [agent.emit()]).status_code == 200
        tick.now += 59.0
        assert post(b, old, [agent.emit()]).status_code == 200  # there: still trusted within the ttl
        tick.now += 1.0
        assert post(b, old, [agent.emit()]).status_code == 401  # and not a moment after
        assert post(b, new, [agent.emit()]).status_code == 200


def test_token_cache_is_bounded_and_never_holds_a_bad_token(tmp_path: Path, secret_file: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 'events.db'}")
    cache = token_cache.install(TokenCache(store.engine, max_entries=2))
    with client(store, secret_file) as c:
        tokens = {f"m-{i}": enroll(c, SECRET, f"m-{i}", f"booth-{i}") for i in range(3)}
        agents = {h: FakeAgent(h, f"booth-{h[2:]}") for h in tokens}
        for _ in range(2):  # the evicted booth is verified again from the database, not refused
            for host, token in tokens.items():
                assert post(c, token, [agents[host].emit()]).status_code == 200
                assert len(cache) <= 2
        for _ in range(5):
            assert post(c, "not-a-token", [agents["m-0"].emit()]).status_code == 401
        assert len(cache) == 2
        assert cache.get("0" * 64) is None


def test_policy_directory_answers_this_collectors_writes_at_once_without_a_reload_per_ingest(
    db_url: str, secret_file: Path
) -> None:
    store = make_store(db_url)
    adm = _admin(store.engine)
    frozen = Clock(0.0)  # the ttl never runs out: only the writes themselves can show the change
    directory = policy_directory.install(PolicyDirectory(store.engine, clock=frozen))
    agent = FakeAgent("m-1", "floor2-booth-07")
    with client(store, secret_file) as c:
        token = enroll(c, SECRET, "m-1", "floor2-booth-07")
        assert post(c, token, [agent.emit()]).json().get("policy") is None
        assert c.put("/v1/groups/floor2", json={"name_pattern": "floor2-*"}, headers=adm).status_code == 200
        assert c.put("/v1/groups/floor2/policy", json=HEADSET, headers=adm).status_code == 201
        loads = directory.loads
        for _ in range(5):
            assert post(c, token, [agent.emit()]).json()["policy"]["version"] == 1
        assert directory.loads == loads + 1  # one reload after the write, then every answer from memory
        assert (
            c.put("/v1/groups/floor2/policy", json={"usb": {"mode": "audit"}}, headers=adm).status_code == 201
        )
        assert post(c, token, [agent.emit()]).json()["policy"]["version"] == 2
        assert c.put("/v1/groups/quiet", json={}, headers=adm).status_code == 200
        assert c.put("/v1/hosts/m-1/group", json={"group": "quiet"}, headers=adm).status_code == 200
        assert post(c, token, [agent.emit()]).json().get("policy") is None
        assert c.put("/v1/hosts/m-1/group", json={"group": None}, headers=adm).status_code == 200
        # Enrolling again under another name moves the booth out of the pattern's group at once.
        token = enroll(c, SECRET, "m-1", "lobby-booth-01")
        assert post(c, token, [FakeAgent("m-1", "lobby-booth-01").emit()]).json().get("policy") is None


def test_policy_directory_of_another_collector_is_stale_at_most_its_ttl(
    db_url: str, secret_file: Path
) -> None:
    here, there = make_store(db_url), make_store(db_url)
    adm = _admin(here.engine)
    tick = Clock(0.0)
    policy_directory.install(PolicyDirectory(there.engine, ttl=10.0, clock=tick))
    agent = FakeAgent("m-1", "floor2-booth-07")
    with client(here, secret_file) as a, client(there, secret_file) as b:
        token = enroll(a, SECRET, "m-1", "floor2-booth-07")
        assert a.put("/v1/groups/floor2", json={"name_pattern": "floor2-*"}, headers=adm).status_code == 200
        assert a.put("/v1/groups/floor2/policy", json=HEADSET, headers=adm).status_code == 201
        assert post(b, token, [agent.emit()]).json()["policy"]["version"] == 1
        assert (
            a.put("/v1/groups/floor2/policy", json={"usb": {"mode": "audit"}}, headers=adm).status_code == 201
        )
        tick.now += 9.9
        assert post(b, token, [agent.emit()]).json()["policy"]["version"] == 1  # within the ttl: the old one
        tick.now += 0.1
        assert post(b, token, [agent.emit()]).json()["policy"]["version"] == 2


def test_policy_directory_is_bounded_and_still_answers_every_booth(tmp_path: Path, secret_file: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 'events.db'}")
    adm = _admin(store.engine)
    directory = policy_directory.install(PolicyDirectory(store.engine, max_hosts=2, clock=Clock(0.0)))
    with client(store, secret_file) as c:
        tokens = {f"m-{i}": enroll(c, SECRET, f"m-{i}", f"floor2-booth-{i}") for i in range(4)}
        agents = {h: FakeAgent(h, f"floor2-booth-{h[2:]}") for h in tokens}
        assert c.put("/v1/groups/floor2", json={"name_pattern": "floor2-*"}, headers=adm).status_code == 200
        assert c.put("/v1/groups/floor2/policy", json=HEADSET, headers=adm).status_code == 201
        for _ in range(2):
            for host, token in tokens.items():
                answer = post(c, token, [agents[host].emit()]).json()
                assert answer["policy"]["body"] == HEADSET, host
                assert directory.cached_hosts() <= 2


def test_postgresql_restart_costs_at_most_one_503_per_connection_then_ingest_goes_on(
    tmp_path: Path, secret_file: Path
) -> None:
    why = pg.available()
    if why:
        pytest.skip(f"PostgreSQL cannot run here: {why}")
    cluster = pg.PgCluster().start()  # its own: restarted under the test
    try:
        store = make_store(cluster.new_database())
        agent = FakeAgent("m-1")
        with client(store, secret_file) as c:
            token = enroll(c, SECRET, "m-1")
            assert post(c, token, [agent.emit()]).status_code == 200
            log = str(cluster.dir / "log")  # -l: without it the server would hold the captured stdout open
            cluster._as_postgres(
                pg._bin("pg_ctl"), "-D", str(cluster.data), "-l", log, "-m", "fast", "-w", "restart"
            )
            statuses = []
            batch = [agent.emit()]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the agent's resend, until answered
                r = post(c, token, batch)
                statuses.append(r.status_code)
                if r.status_code == 200:
                    break
                assert r.status_code == 503, r.text
                assert "Retry-After" in r.headers
            assert statuses[-1] == 200
            assert statuses.count(503) <= 1  # the disconnect drops every pooled connection at once
            assert post(c, token, [agent.emit()]).json()["accepted"] == 1
    finally:
        cluster.stop()
