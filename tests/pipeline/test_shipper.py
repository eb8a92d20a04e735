"""The shipper against a real local HTTP receiver, with the clock of its backoff faked (no sleeps)."""

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from boothguard.events import AgentRef, Draft, HostRef
from boothguard.ship.http import HttpSink
from boothguard.ship.settings import ShipSection
from boothguard.ship.shipper import Shipper
from boothguard.spool.spool import Spool
from boothguard.spool.writer import SpoolWriter
from tests.helpers.receiver import Behaviour, Receiver

HOST = HostRef(id="m1", name="booth-1")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


class Rig:
    def __init__(self, tmp: Path, url: str, token: str = "t0k3n", **ship: object) -> None:
        self.token_file = tmp / "host.token"
        self.token_file.write_text(token)
        spool = Spool(
            tmp / "spool.db", host=HOST, agent=AgentRef(version="t"), max_bytes=1 << 30, reserve_bytes=0
        )
        self.writer = SpoolWriter(spool)
        self.settings = ShipSection(collector_url=url, batch_max_wait=0.05, urgent_max_wait=0.01, **ship)
        self.delays: list[float] = []
        self.commands: list[dict[str, object]] = []
        self.shipper = Shipper(
            self.writer,
            HttpSink(self.settings, self.token_file),
            self.settings,
            on_commands=self._on_commands,
            sleep=self._sleep,
            rand=lambda: 1.0,
        )
        self.task: asyncio.Task[None] | None = None
        self.on_sleep: list[object] = []

    def _on_commands(self, commands: list[dict[str, object]]) -> None:
        self.commands += commands

    async def _sleep(self, delay: float) -> None:
        self.delays.append(delay)
        for hook in list(self.on_sleep):
            hook(len(self.delays))  # type: ignore[operator]
        await asyncio.sleep(0)

    async def start(self) -> None:
        await self.writer.start()
        self.task = asyncio.create_task(self.shipper.run())

    async def emit(self, n: int, severity: str = "info") -> None:
        await asyncio.gather(*(self.writer.emit(Draft("custom.t", severity, {"i": i})) for i in range(n)))

    async def drained(self, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while (await self.writer.call(self.writer.spool.stats)).depth:
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.shipper.sink.close()
        await self.writer.stop()


@pytest.fixture
async def rig(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Rig]:
    r = Rig(tmp_path, receiver.url)
    await r.start()
    yield r
    await r.close()


def assert_complete(receiver: Receiver, n: int) -> None:
    assert sorted(receiver.stored) == list(range(1, n + 1))
    assert receiver.chain_problems() == []


async def test_ships_everything_in_batches_of_at_most_500(rig: Rig, receiver: Receiver) -> None:
    await rig.emit(1200)
    await rig.drained()
    assert_complete(receiver, 1200)
    assert receiver.requests >= 3
    assert rig.shipper.stats.shipped == 1200


async def test_500_then_success(rig: Rig, receiver: Receiver) -> None:
    receiver.script.extend([Behaviour("status", 500, body=b"oops")] * 3)
    await rig.emit(10)
    await rig.drained()
    assert_complete(receiver, 10)
    assert len(rig.delays) == 3
    assert all(1.0 <= d <= 300 for d in rig.delays)


async def test_429_retry_after_is_honoured(rig: Rig, receiver: Receiver) -> None:
    receiver.script.append(Behaviour("status", 429, headers={"Retry-After": "7"}, body=b"{}"))
    receiver.script.append(Behaviour("status", 503, headers={"Retry-After": "2"}, body=b"{}"))
    await rig.emit(5)
    await rig.drained()
    assert rig.delays == [7.0 * 1.5, 2.0 * 1.5]  # at least Retry-After, spread by up to half (rand = 1)
    assert_complete(receiver, 5)


async def test_the_same_retry_after_again_and_again_still_backs_off(rig: Rig, receiver: Receiver) -> None:
    """An overloaded collector answers every booth 503 with Retry-After: 2; each must back off further."""
    receiver.script.extend([Behaviour("status", 503, headers={"Retry-After": "2"}, body=b"{}")] * 7)
    await rig.emit(3)
    await rig.drained()
    # Never sooner than asked, and growing with the backoff (a 5xx batch is also bisected on the way).
    assert rig.delays[:3] == [3.0, 3.0, 4.0]
    assert all(d >= 3.0 for d in rig.delays)
    assert rig.delays == sorted(rig.delays)
    assert rig.delays[-1] >= 32.0
    assert_complete(receiver, 3)


async def test_a_retry_after_of_a_day_is_capped_at_backoff_max(rig: Rig, receiver: Receiver) -> None:
    receiver.script.append(Behaviour("status", 503, headers={"Retry-After": "86400"}, body=b"{}"))
    receiver.script.append(Behaviour("status", 429, headers={"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"}))
    await rig.emit(3)
    await rig.drained()
    assert rig.delays == [300.0, 300.0]
    assert_complete(receiver, 3)


async def test_retry_after_is_capped_at_a_configured_backoff_max(tmp_path: Path, receiver: Receiver) -> None:
    rig = Rig(tmp_path, receiver.url, backoff_max=20.0)
    await rig.start()
    try:
        receiver.script.append(Behaviour("status", 503, headers={"Retry-After": "3600"}, body=b"{}"))
        await rig.emit(2)
        await rig.drained()
        assert rig.delays == [20.0]
    finally:
        await rig.close()


ZERO_ANSWER = b'{"accepted": 0, "duplicates": 0, "rejected": []}'


async def test_an_answer_that_does_not_count_every_event_acks_nothing(rig: Rig, receiver: Receiver) -> None:
    """A 2xx saying 0 accepted for 50 events (nothing stored) must not purge them: kept, sent again."""
    receiver.script.extend([Behaviour("status", 200, body=ZERO_ANSWER)] * 2)
    await rig.emit(50)
    await rig.drained()
    assert_complete(receiver, 50 + 1)  # and the report
    assert len(rig.delays) == 2
    [report] = [e for e in receiver.events() if e.type == "ship.answer_mismatch"]  # one per streak
    assert report.severity == "high"
    assert report.data["events"] == 50
    assert (report.data["accepted"], report.data["duplicates"], report.data["rejected"]) == (0, 0, 0)
    assert (report.data["from_seq"], report.data["to_seq"]) == (1, 50)
    assert rig.shipper.status()["answer_mismatches"] == 2
    assert (await rig.writer.call(rig.writer.spool.stats)).dead_letters == 0


@pytest.mark.parametrize(
    "answer",
    [
        b'{"accepted": 3, "duplicates": 1, "rejected": []}',  # more than sent
        b'{"accepted": 2, "duplicates": 0, "rejected": [{"index": 9, "error": "x"}]}',  # no such index
        b'{"accepted": 1, "duplicates": 0, "rejected": [{"index": 0, "error": "x"}, '
        b'{"index": 0, "error": "y"}]}',  # one index twice
    ],
)
async def test_miscounted_or_impossible_rejections_are_not_acks(
    rig: Rig, receiver: Receiver, answer: bytes
) -> None:
    receiver.script.append(Behaviour("status", 200, body=answer))
    await rig.emit(3)
    await rig.drained()
    assert_complete(receiver, 3 + 1)
    assert len(rig.delays) == 1
    assert (await rig.writer.call(rig.writer.spool.stats)).dead_letters == 0


async def test_a_batch_failing_with_5xx_again_and_again_is_bisected(rig: Rig, receiver: Receiver) -> None:
    """A collector that answers 503 to any batch holding one event: the rest is delivered, that one is
    dead-lettered and declared, and the chain the receiver holds has no unexplained hole."""
    receiver.poison = lambda ev: ev["data"].get("poison") is True
    await asyncio.gather(
        *(rig.writer.emit(Draft("custom.t", "info", {"i": i, "poison": i == 12})) for i in range(40))
    )
    # the declaration is sealed after the dead letter: the spool is empty for a moment before it exists
    async with asyncio.timeout(30):
        while not any(e.type == "spool.gap" for e in receiver.events()):
            await asyncio.sleep(0.01)
    await rig.drained()
    bad = 13
    assert bad not in receiver.stored
    gaps = [e for e in receiver.events() if e.type == "spool.gap"]
    assert [(g.data["reason"], g.data["seqs"]) for g in gaps] == [("rejected", [bad])]
    assert "5xx" in gaps[0].data["errors"][0]
    assert set(receiver.stored) == set(range(1, 42)) - {bad}  # 40 events and the declaration
    assert receiver.chain_problems() == []
    assert (await rig.writer.call(rig.writer.spool.stats)).dead_letters == 1
    assert rig.shipper.stats.bisections >= 1
    assert len(rig.delays) < 15, rig.delays


async def test_an_outage_answering_503_to_everything_dead_letters_nothing(
    rig: Rig, receiver: Receiver
) -> None:
    receiver.poison = lambda ev: True
    rig.on_sleep.append(lambda n: n == 12 and setattr(receiver, "poison", None))
    await rig.emit(40)
    await rig.drained()
    assert_complete(receiver, 40)
    assert (await rig.writer.call(rig.writer.spool.stats)).dead_letters == 0
    assert rig.shipper.stats.bisections >= 2  # it did look, and found the collector down, not an event
    assert receiver.poisoned > 12


async def test_413_splits_the_batch(rig: Rig, receiver: Receiver) -> None:
    receiver.max_events = 60
    await rig.emit(400)
    await rig.drained()
    assert_complete(receiver, 400)
    assert rig.delays == []


async def test_per_event_rejection_goes_to_dead_letter_and_is_reported(rig: Rig, receiver: Receiver) -> None:
    receiver.script.append(Behaviour("reject_index", index=1))
    await rig.emit(3)
    await rig.drained()
    stats = await rig.writer.call(rig.writer.spool.stats)
    assert stats.dead_letters == 1
    reports = [e for e in receiver.events() if e.type == "spool.gap"]
    assert len(reports) == 1
    assert reports[0].data["reason"] == "rejected"
    assert reports[0].data["count"] == 1
    assert reports[0].data["seqs"] == [2]
    assert (reports[0].data["from_seq"], reports[0].data["to_seq"]) == (2, 2)
    assert reports[0].data["errors"] == ["invalid event"]
    assert 2 not in receiver.stored
    assert receiver.chain_problems() == [], "the dead letter is a declared gap"


async def test_401_keeps_everything_and_retries(tmp_path: Path, receiver: Receiver) -> None:
    rig = Rig(tmp_path, receiver.url, token="wrong")
    await rig.start()
    try:
        rig.on_sleep.append(lambda n: n == 4 and rig.token_file.write_text("t0k3n"))
        await rig.emit(20)
        await rig.drained()
        assert len(rig.delays) == 4
        assert_complete(receiver, 20)
    finally:
        await rig.close()


async def test_a_captive_portal_200_html_page_is_not_an_ack(rig: Rig, receiver: Receiver) -> None:
    receiver.script.append(
        Behaviour("status", 200, headers={"Content-Type": "text/html"}, body=b"<html>Login to Wi-Fi</html>")
    )
    await rig.emit(4)
    await rig.drained()
    assert len(rig.delays) == 1
    assert_complete(receiver, 4)


async def test_connection_reset_after_store_resends_duplicates_not_losses(
    rig: Rig, receiver: Receiver
) -> None:
    receiver.script.append(Behaviour("reset_after_store"))
    await rig.emit(50)
    await rig.drained()
    assert_complete(receiver, 50)
    assert receiver.duplicates == 50
    assert rig.shipper.stats.duplicates == 50


async def test_commands_in_the_answer_are_handed_over(rig: Rig, receiver: Receiver) -> None:
    receiver.commands = [{"id": "c1", "type": "lock"}]
    await rig.emit(1)
    await rig.drained()
    assert rig.commands == [{"id": "c1", "type": "lock"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_receiver_down_for_days_then_backlog_drains(tmp_path: Path) -> None:
    port = free_port()
    rig = Rig(tmp_path, f"http://127.0.0.1:{port}")
    await rig.start()
    receiver: Receiver | None = None
    try:
        await rig.emit(3000)
        attempts = 600  # with a 5-minute cap: more than two days of simulated outage

        def come_up(n: int) -> None:
            nonlocal receiver
            if n == attempts:
                receiver = Receiver()
                receiver.server.server_close()
                from http.server import ThreadingHTTPServer

                receiver.server = ThreadingHTTPServer(("127.0.0.1", port), receiver._handler())
                receiver.server.daemon_threads = True
                import threading

                receiver.thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
                receiver.start()

        rig.on_sleep.append(come_up)
        await rig.drained(timeout=60)
        assert receiver is not None
        assert len(rig.delays) == attempts, "the shipper gave up or skipped retries"
        assert max(rig.delays) == 300.0
        assert min(rig.delays) >= 1.0
        assert sum(rig.delays) > 2 * 86400
        assert_complete(receiver, 3000)
    finally:
        await rig.close()
        if receiver is not None:
            receiver.stop()
