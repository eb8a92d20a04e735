"""The dispatcher: a dead or hanging channel never delays the others nor blocks submit; retries recover."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from boothguard.collector.alerts.dispatch import Dispatcher
from boothguard.collector.alerts.settings import AlertsSection
from tests.alerts.helpers import alert
from tests.alerts.servers import (
    Cert,
    HangingServer,
    WebhookReceiver,
    free_port,
    make_cert,
    wait_until,
)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    return make_cert(tmp_path_factory.mktemp("cert"))


def section(channels: dict[str, Any], **kw: Any) -> AlertsSection:
    base = {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.2, "retry_max_attempts": 200}
    return AlertsSection.model_validate({"channels": channels, **base, **kw})


async def until(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    await asyncio.to_thread(wait_until, predicate, timeout, what)


def test_dead_and_hanging_channels_do_not_delay_the_healthy_one(cert: Cert) -> None:
    dead_port = free_port()  # nothing listens: connection refused
    with (
        WebhookReceiver() as hook,
        HangingServer() as hang_http,
        HangingServer() as hang_smtp,
        HangingServer() as hang_tls,
    ):
        sec = section(
            {
                "good": {"kind": "webhook", "url": hook.url},
                "dead": {"kind": "webhook", "url": f"http://127.0.0.1:{dead_port}/x"},
                "hang_http": {"kind": "webhook", "url": f"http://127.0.0.1:{hang_http.port}/x",
                              "timeout_seconds": 120},
                "hang_smtp": {"kind": "email", "host": "127.0.0.1", "port": hang_smtp.port,
                              "timeout_seconds": 120, "from_addr": "a@example.com", "to": ["b@example.com"]},
                "hang_tls": {"kind": "syslog", "host": "127.0.0.1", "port": hang_tls.port, "transport": "tls",
                             "ca_file": str(cert.cert), "timeout_seconds": 120},
            },
            queue_size=50,
        )  # fmt: skip
        everywhere = ("dead", "hang_http", "hang_smtp", "hang_tls", "good")

        async def run() -> dict[str, Any]:
            dispatcher = Dispatcher(sec)
            await dispatcher.start()
            try:
                for i in range(20):
                    assert dispatcher.submit(alert(i, channels=everywhere))
                    await asyncio.sleep(0)
                await until(lambda: dispatcher.stats()["good"]["sent"] == 20, 15, "healthy channel delivery")
                stats = dispatcher.stats()
            finally:
                await dispatcher.stop(drain_seconds=0)
            return stats

        stats = asyncio.run(run())
    # Everything reached the healthy channel while every hanging channel was still stuck on its first alert
    # (120 s timeouts) and the dead one was still retrying.
    assert sorted(r.body["alert"]["alert_id"] for r in hook.received) == list(range(20))
    for name in ("hang_http", "hang_smtp", "hang_tls"):
        assert stats[name]["sent"] == stats[name]["failed"] == stats[name]["retries"] == 0, (
            name,
            stats[name],
        )
        assert stats[name]["queued"] == 20
    assert stats["dead"]["retries"] >= 1
    assert stats["dead"]["sent"] == 0
    assert stats["good"] == {**stats["good"], "sent": 20, "dropped": 0, "failed": 0}


def test_submit_never_blocks_a_full_queue_drops_and_counts() -> None:
    with HangingServer() as hang:
        hook = {"kind": "webhook", "url": f"http://127.0.0.1:{hang.port}/", "timeout_seconds": 60}
        sec = section({"hang": hook}, queue_size=5)

        async def run() -> tuple[list[bool], dict[str, Any], int]:
            dispatcher = Dispatcher(sec)
            await dispatcher.start()
            dispatcher.submit(alert(0, channels=("hang",)))
            await until(
                lambda: dispatcher.stats()["hang"]["queued"] == 1 and len(hang.conns) == 1, 10, "in flight"
            )
            # The worker holds alert 0 against a server that never answers; submit must still return at once.
            results = [dispatcher.submit(alert(i, channels=("hang",))) for i in range(1, 11)]
            unknown = dispatcher.submit(alert(99, channels=("nowhere",)))
            stats = dispatcher.stats()
            await dispatcher.stop(drain_seconds=0)
            assert not unknown
            assert not dispatcher.submit(alert(100, channels=("hang",)))  # stopped: refused
            return results, {**stats, "after": dispatcher.stats()}, dispatcher.unknown_channel

        results, stats, unknown = asyncio.run(run())
    assert results == [True] * 5 + [False] * 5
    assert (stats["hang"]["submitted"], stats["hang"]["dropped"], stats["hang"]["queued"]) == (6, 5, 6)
    assert unknown == 1
    assert stats["after"]["hang"]["abandoned"] == 6


def test_retries_succeed_once_the_webhook_comes_up() -> None:
    port = free_port()
    sec = section({"hook": {"kind": "webhook", "url": f"http://127.0.0.1:{port}/hook"}})

    async def run() -> dict[str, Any]:
        dispatcher = Dispatcher(sec)
        await dispatcher.start()
        assert dispatcher.submit(alert(1, channels=("hook",)))
        assert dispatcher.submit(alert(2, channels=("hook",)))
        await until(lambda: dispatcher.stats()["hook"]["retries"] >= 3, 10, "retries")
        with WebhookReceiver(port) as hook:
            await until(lambda: len(hook.received) == 2, 10, "delivery after recovery")
            order = [r.body["alert"]["alert_id"] for r in hook.received]
        await dispatcher.stop()
        stats = dispatcher.stats()
        stats["order"] = order  # type: ignore[assignment]
        return stats

    stats = asyncio.run(run())
    assert stats["hook"]["sent"] == 2
    assert stats["hook"]["failed"] == 0
    assert stats["order"] == [1, 2]  # order kept across retries


def test_syslog_reconnects_when_rsyslog_comes_up_and_after_it_restarts(tmp_path: Path, cert: Cert) -> None:
    from tests.alerts.servers import Rsyslog

    rs = Rsyslog(tmp_path, cert)  # ports chosen, server not started yet
    sec = section(
        {"siem": {"kind": "syslog", "host": "127.0.0.1", "port": rs.tls_port, "ca_file": str(cert.cert)}}
    )

    async def run() -> dict[str, Any]:
        dispatcher = Dispatcher(sec)
        await dispatcher.start()
        assert dispatcher.submit(alert(1, channels=("siem",)))
        await until(lambda: dispatcher.stats()["siem"]["retries"] >= 2, 10, "retries")
        await asyncio.to_thread(rs.start)
        try:
            await until(lambda: len(rs.messages()) == 1, 15, "first message")
            # rsyslog restarts: the channel notices the closed connection and opens a new one.
            await asyncio.to_thread(rs.stop)
            await asyncio.to_thread(rs.start)
            assert dispatcher.submit(alert(2, channels=("siem",)))
            await until(lambda: len(rs.messages()) == 2, 15, "message after restart")
        finally:
            await dispatcher.stop()
            await asyncio.to_thread(rs.stop)
        return dispatcher.stats()

    stats = asyncio.run(run())
    assert stats["siem"]["sent"] == 2
    assert [m["structured-data"].split('"')[1] for m in rs.messages()] == ["1", "2"]


def test_submit_from_other_threads_is_safe() -> None:
    with WebhookReceiver() as hook:
        sec = section({"hook": {"kind": "webhook", "url": hook.url}}, queue_size=1000)

        async def run() -> dict[str, Any]:
            dispatcher = Dispatcher(sec)
            await dispatcher.start()

            def producer(base: int) -> None:
                for i in range(25):
                    assert dispatcher.submit(alert(base + i, channels=("hook",)))

            threads = [threading.Thread(target=producer, args=(n * 100,)) for n in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                await asyncio.to_thread(t.join, 10)
            await until(lambda: len(hook.received) == 100, 15, "100 posts")
            await dispatcher.stop()
            return dispatcher.stats()

        stats = asyncio.run(run())
    assert stats["hook"]["sent"] == 100
    assert len({r.body["alert"]["alert_id"] for r in hook.received}) == 100


def test_gives_up_after_max_attempts_and_moves_on() -> None:
    with WebhookReceiver() as hook:
        hook.statuses = [500] * 3
        sec = section({"hook": {"kind": "webhook", "url": hook.url}}, retry_max_attempts=3)

        async def run() -> dict[str, Any]:
            dispatcher = Dispatcher(sec)
            await dispatcher.start()
            dispatcher.submit(alert(1, channels=("hook",)))
            dispatcher.submit(alert(2, channels=("hook",)))
            await until(lambda: len(hook.received) == 1, 10, "second alert")
            await dispatcher.stop()
            return dispatcher.stats()

        stats = asyncio.run(run())
    assert [r.body["alert"]["alert_id"] for r in hook.received] == [2]
    assert (stats["hook"]["failed"], stats["hook"]["retries"], stats["hook"]["sent"]) == (1, 2, 1)
