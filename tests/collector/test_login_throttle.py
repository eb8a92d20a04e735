"""Issue 19: one failed-login throttle for HTTP Basic, POST /v1/sessions and the dashboard's /login, and a
bound on concurrent argon2 checks so a flood of guesses is refused at once."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi.testclient import TestClient

from boothguard.collector import users
from tests.collector.helpers import client, make_store

PASSWORD = "right-pass-123"


def _dash_login(c: TestClient, name: str, password: str) -> int:
    c.get("/login")
    token = c.cookies.get("bg_login_csrf")
    r = c.post(
        "/login",
        data={"csrf": token, "username": name, "password": password},
        follow_redirects=False,
    )
    return r.status_code


def test_25_wrong_basic_passwords_then_the_right_one_is_429(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 'c.db'}")
    users.add_user(store.engine, "ana", "analyst", PASSWORD, now=time.time())
    with client(store) as c:
        codes = [c.get("/v1/hosts", auth=("ana", f"guess-{i}")).status_code for i in range(25)]
        assert codes[:5] == [401] * 5
        assert set(codes[5:]) == {429}
        right = c.get("/v1/hosts", auth=("ana", PASSWORD))
        assert right.status_code == 429
        assert int(right.headers["Retry-After"]) > 0
        # the same throttle for a session and for the dashboard
        assert c.post("/v1/sessions", auth=("ana", PASSWORD)).status_code == 429
        assert _dash_login(c, "ana", PASSWORD) == 429
        # the throttle window passes: the right password works again
        store.clock = lambda: time.time() + 16 * 60
        assert c.get("/v1/hosts", auth=("ana", PASSWORD)).status_code == 200


def test_dashboard_failures_throttle_basic_too_and_per_source(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 'c.db'}")
    users.add_user(store.engine, "vic", "viewer", PASSWORD, now=time.time())
    users.add_user(store.engine, "tom", "viewer", PASSWORD, now=time.time())
    with client(store) as c:
        assert [_dash_login(c, "vic", "nope-nope") for _ in range(5)] == [401] * 5
        assert c.get("/v1/hosts", auth=("vic", PASSWORD)).status_code == 429
        assert c.get("/v1/hosts", auth=("tom", PASSWORD)).status_code == 200
        # 20 failures from one address over many names: that address is throttled for every account
        for i in range(15):
            assert c.get("/v1/hosts", auth=(f"nobody{i}", "x-guess-x")).status_code == 401
        assert c.get("/v1/hosts", auth=("tom", PASSWORD)).status_code == 429


def test_a_basic_auth_flood_is_bounded_and_refused_quickly(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 'c.db'}", max_password_checks=2)
    with client(store) as c:
        svc = c.svc  # type: ignore[attr-defined]
        peak = 0

        def guess(i: int) -> int:
            nonlocal peak
            peak = max(peak, svc.logins.active)
            auth = base64.b64encode(f"flood{i}:guess-{i}".encode()).decode()
            return c.get("/v1/hosts", headers={"Authorization": f"Basic {auth}"}).status_code

        with ThreadPoolExecutor(24) as pool:
            codes = list(pool.map(guess, range(48)))
        assert set(codes) <= {401, 429, 503}
        assert codes.count(503) > 0, codes  # the excess is refused, not queued
        assert svc.logins.busy_refused == codes.count(503)
        assert peak <= 2
