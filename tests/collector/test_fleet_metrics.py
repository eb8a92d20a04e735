"""/metrics on a real collector process: open alerts by severity, booths by state (silent ones too), the
booths' spool backlog from their heartbeats, per-channel delivery counters (a live webhook and a dead one)
and chain findings the background check makes, not only ingest's."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.alerts.servers import WebhookReceiver
from tests.collector.helpers import FakeAgent, ndjson
from tests.collector.pg import free_port
from tests.collector.proc import CollectorProcess


def _value(text: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def _wait(get: Callable[[], str], ok: Callable[[str], bool], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = get()
        if ok(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_fleet_figures_and_delivery_counters(tmp_path: Path) -> None:
    secret = tmp_path / "enroll.secret"
    secret.write_text("m-secret")
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: every attempt fails
    with WebhookReceiver() as hook:
        coll = CollectorProcess(
            tmp_path,
            f"sqlite:///{tmp_path}/m.db",
            secret,
            silence_default_seconds=2,
            silence_check_seconds=0.2,
            chain_gap_grace_seconds=1,
        )
        coll.config.write_text(
            coll.config.read_text()
            + "\n[alerts]\nthrottle_seconds = 0\nretry_initial_seconds = 0.05\nretry_max_seconds = 0.1\n"
            + "retry_max_attempts = 2\n"
            + f'[alerts.channels.hook]\nkind = "webhook"\nurl = "{hook.url}"\n'
            + f'[alerts.channels.dead]\nkind = "webhook"\nurl = "{dead}"\ntimeout_seconds = 1\n'
        )
        with coll, httpx.Client(timeout=10) as http:
            scrape = lambda: http.get(coll.url + "/metrics").text  # noqa: E731

            def post(host: str, events: list[dict[str, object]]) -> None:
                token = (
                    tokens.get(host)
                    or http.post(
                        coll.url + "/v1/enroll",
                        json={"host": {"id": host, "name": host}},
                        headers={"Authorization": "Bearer m-secret"},
                    ).json()["token"]
                )
                tokens[host] = token
                r = http.post(
                    coll.url + "/v1/events",
                    content=ndjson(events),
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 200, r.text

            tokens: dict[str, str] = {}
            quiet, busy = FakeAgent("m-quiet", "m-quiet"), FakeAgent("m-busy", "m-busy")
            post("m-quiet", [quiet.emit("agent.heartbeat", data={"spool_backlog": 7})])
            beat = {"spool_backlog": 40, "interval_seconds": 3600}
            post("m-busy", [busy.emit("agent.heartbeat", data=beat)])
            post(
                "m-busy",
                [busy.emit("usb.device.blocked", "high", {"vendor_id": "0781", "product_id": "5567"})],
            )
            busy.seq += 1  # seq 3 never sent: a hole the background check reports once the grace is over
            post("m-busy", [busy.emit("agent.heartbeat", data=beat)])

            text = _wait(scrape, lambda t: (_value(t, "boothguard_collector_hosts_silent") or 0) >= 1)
            assert _value(text, "boothguard_collector_hosts_silent") == 1  # m-quiet; m-busy beats hourly
            assert _value(text, "boothguard_collector_hosts", '{state="silent"}') == 1
            assert _value(text, "boothguard_collector_hosts", '{state="online"}') == 1
            assert _value(text, "boothguard_collector_spool_backlog_events") == 47
            assert _value(text, "boothguard_collector_spool_backlog_max_events") == 40

            def delivered(t: str) -> bool:
                sent = _value(
                    t, "boothguard_collector_alert_deliveries_total", '{channel="hook",outcome="sent"}'
                )
                failed = _value(
                    t, "boothguard_collector_alert_deliveries_total", '{channel="dead",outcome="failed"}'
                )
                return (sent or 0) >= 1 and (failed or 0) >= 1

            text = _wait(scrape, delivered)
            assert delivered(text), text
            assert hook.wait_for(1, timeout=10)
            assert (_value(text, "boothguard_collector_alerts_open", '{severity="high"}') or 0) >= 1
            assert _value(text, "boothguard_collector_alerts_open", '{severity="info"}') is not None

            def settled(t: str) -> bool:
                return any(
                    float(v) > 0
                    for v in re.findall(
                        r"^boothguard_collector_chain_findings_total\{[^}]*\} (\S+)$", t, re.M
                    )
                )

            text = _wait(scrape, settled)
            assert settled(text), "the background check's chain finding is not counted"
