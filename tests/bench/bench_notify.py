"""Notify latency: a `high` observation → rules → throttle → Dispatcher.submit → webhook receiver, p50/p99,
against a floor of raw httpx POSTs of the same JSON payload to the same receiver, measured in the same run.

    .venv/bin/python -m tests.bench.bench_notify [--alerts N] [--rounds R]

Both paths reuse one keep-alive connection; the receiver stamps arrival in this process (perf_counter).
Rounds alternate floor and dispatcher so drift on a busy machine hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from boothguard import log
from boothguard.collector.alerts.channels.webhook import payload
from boothguard.collector.alerts.dispatch import Dispatcher
from boothguard.collector.alerts.model import Alert, Observation
from boothguard.collector.alerts.rules import AlertRules
from boothguard.collector.alerts.settings import AlertsSection
from boothguard.collector.alerts.throttle import should_notify
from tests.alerts.servers import Received, WebhookReceiver


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(latencies: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "max_ms": round(max(ms), 3),
    }


def to_alert(i: int, draft: Any) -> Alert:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    obs = draft.observation
    return Alert(
        id=i, rule=draft.rule, severity=draft.severity, title=draft.title, group_key=draft.group_key,
        channels=draft.channels, host_id=obs.host_id, host_name=obs.host_name, event_type=obs.type,
        state="open", count=1, first_seen=now, last_seen=now, data=dict(obs.data),
    )  # fmt: skip


async def main(n: int, rounds: int) -> dict[str, Any]:
    log.setup("error", json_output=True)
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[float]] = {}

    def arrived(item: Received) -> None:
        fut = waiting.get(int(item.body["alert"]["alert_id"]))
        if fut is not None:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(item.at))

    with WebhookReceiver() as hook:
        hook.on_post = arrived
        section = AlertsSection.model_validate({"channels": {"hook": {"kind": "webhook", "url": hook.url}}})
        rules = AlertRules(section)
        dispatcher = Dispatcher(section)
        await dispatcher.start()
        floor: list[float] = []
        dispatched: list[float] = []
        next_id = 0
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(rounds):
                for _ in range(n):  # floor: the same JSON, posted straight
                    next_id += 1
                    body = payload(to_alert(next_id, rules.match(observation())[0]))
                    waiting[next_id] = loop.create_future()
                    started = time.perf_counter()
                    await client.post(hook.url, json=body)
                    floor.append(await asyncio.wait_for(waiting[next_id], 10) - started)
                for _ in range(n):  # the real path, from the observation on
                    next_id += 1
                    waiting[next_id] = loop.create_future()
                    started = time.perf_counter()
                    (draft,) = rules.match(observation())
                    alert = to_alert(next_id, draft)
                    assert should_notify(alert, datetime.now(UTC), section)
                    assert dispatcher.submit(alert)
                    dispatched.append(await asyncio.wait_for(waiting[next_id], 10) - started)
        await dispatcher.stop()
        stats = dispatcher.stats()["hook"]
    f, d = summary(floor), summary(dispatched)
    return {
        "bench": "notify_latency",
        "path": "observation(high) -> rules -> should_notify -> Dispatcher.submit -> webhook receiver",
        "floor": {"what": "raw httpx POST of the same payload to the same receiver", **f},
        "dispatcher": {**d, "sent": stats["sent"], "dropped": stats["dropped"], "failed": stats["failed"]},
        "p99_ratio": round(d["p99_ms"] / f["p99_ms"], 3),
        "p50_ratio": round(d["p50_ms"] / f["p50_ms"], 3),
    }


def observation() -> Observation:
    return Observation(
        type="usb.device.blocked", severity="high", host_id="mid-1", host_name="booth-07", user="alice",
        data={"vendor_id": "0781", "product_id": "5581", "class": "storage"},
    )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=300, help="per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.alerts, args.rounds)), indent=2))
