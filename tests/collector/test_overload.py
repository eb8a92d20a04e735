"""Overload gets Retry-After; alerts reach a real webhook and a dead channel does not stall ingest."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.alerts.servers import HangingServer, WebhookReceiver
from tests.collector.helpers import FakeAgent, ndjson
from tests.collector.proc import CollectorProcess


def _enroll(url: str, host_id: str) -> str:
    r = httpx.post(
        url + "/v1/enroll",
        json={"host": {"id": host_id, "name": host_id}},
        headers={"Authorization": "Bearer s3cret-enroll"},
        timeout=10,
    )
    return str(r.json()["token"])


def _slow_post(url: str, token: str, body: bytes, release: threading.Event, out: list[int]) -> None:
    def chunks() -> Iterator[bytes]:
        yield body[:10]
        release.wait(20)
        yield body[10:]

    r = httpx.post(
        url + "/v1/events", content=chunks(), headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    out.append(r.status_code)


def _wait_in_flight(url: str, n: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = httpx.get(url + "/metrics", timeout=5).text
        if f"boothguard_collector_ingests_in_flight {float(n)}" in text:
            return
        time.sleep(0.05)
    raise AssertionError("ingest never in flight")


def test_busy_collector_answers_503_and_busy_host_429(tmp_path: Path, secret_file: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    a, b = FakeAgent("m-a"), FakeAgent("m-b")
    with CollectorProcess(
        tmp_path, url, secret_file, max_concurrent_ingests=2, max_ingests_per_host=1
    ) as coll:
        ta, tb = _enroll(coll.url, "m-a"), _enroll(coll.url, "m-b")
        release = threading.Event()
        codes: list[int] = []
        slow = threading.Thread(target=_slow_post, args=(coll.url, ta, ndjson(a.many(5)), release, codes))
        slow.start()
        _wait_in_flight(coll.url, 1)
        r = httpx.post(
            coll.url + "/v1/events", content=ndjson(a.many(1)), headers={"Authorization": f"Bearer {ta}"}
        )
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2"
        slow_b = threading.Thread(target=_slow_post, args=(coll.url, tb, ndjson(b.many(5)), release, codes))
        slow_b.start()
        _wait_in_flight(coll.url, 2)
        r = httpx.post(
            coll.url + "/v1/events", content=ndjson(b.many(1)), headers={"Authorization": f"Bearer {tb}"}
        )
        assert r.status_code == 503
        assert r.headers["retry-after"] == "2"
        release.set()
        slow.join(30)
        slow_b.join(30)
        assert codes == [200, 200]
        # After the load is gone the same requests go through.
        r = httpx.post(
            coll.url + "/v1/events", content=ndjson(a.events[5:]), headers={"Authorization": f"Bearer {ta}"}
        )
        assert r.json()["accepted"] == 1


def _alerts_config(coll: CollectorProcess, hook_url: str, dead_url: str) -> None:
    text = coll.config.read_text()
    text += f"""
[alerts]
throttle_seconds = 0
retry_initial_seconds = 0.05
retry_max_attempts = 2

[alerts.channels.hook]
kind = "webhook"
url = "{hook_url}"

[alerts.channels.dead]
kind = "webhook"
url = "{dead_url}"
timeout_seconds = 30
"""
    coll.config.write_text(text)


def test_alerts_reach_a_real_webhook_and_a_dead_channel_does_not_stall_ingest(
    tmp_path: Path, secret_file: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    agent = FakeAgent("m-1", "booth-7")
    with WebhookReceiver() as hook, HangingServer() as dead:
        coll = CollectorProcess(tmp_path, url, secret_file)
        _alerts_config(coll, hook.url, f"http://127.0.0.1:{dead.port}/hook")
        with coll:
            token = _enroll(coll.url, "m-1")
            started = time.monotonic()
            for i in range(5):
                stick = {"vendor_id": "0781", "product_id": f"{i:04d}"}
                r = httpx.post(
                    coll.url + "/v1/events",
                    content=ndjson([agent.emit("usb.device.blocked", "high", stick)]),
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
                assert r.json()["accepted"] == 1
            assert time.monotonic() - started < 10  # the hanging channel holds 30 s per attempt
            got = hook.wait_for(1, timeout=15)
            assert "booth-7" in json_text(got[0].body)
            alerts = httpx.get(coll.url + "/metrics").text
            assert "boothguard_collector_alerts_submitted_total" in alerts


def json_text(body: object) -> str:
    import json

    return json.dumps(body, ensure_ascii=False)
