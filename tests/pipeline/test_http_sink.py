"""The agent's HTTP sink against real servers on loopback: keep-alive, TLS, client certs, bad answers."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from boothguard.ship.http import MAX_ANSWER_BYTES, HttpSink
from boothguard.ship.settings import ShipSection
from boothguard.ship.sink import Accepted, Batch, Retry
from tests.alerts.servers import Cert, make_cert
from tests.helpers.receiver import Behaviour, Receiver


def batch(first: int, n: int = 3) -> Batch:
    seqs = tuple(range(first, first + n))
    return Batch(seqs, b"".join(json.dumps({"seq": s, "id": f"e{s}"}).encode() + b"\n" for s in seqs))


def sink_for(url: str, tmp: Path, **settings: object) -> HttpSink:
    token = tmp / "token"
    token.write_text("t0k3n")
    return HttpSink(ShipSection.model_validate({"collector_url": url, "timeout": 5, **settings}), token)


@pytest.fixture(scope="module")
def server_cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    return make_cert(tmp_path_factory.mktemp("server"))


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    return make_cert(tmp_path_factory.mktemp("client"))


def running(receiver: Receiver) -> Iterator[Receiver]:
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def keep_alive() -> Iterator[Receiver]:
    yield from running(Receiver(keep_alive=True, idle_timeout=0.3))


async def test_one_kept_alive_connection_carries_many_batches(keep_alive: Receiver, tmp_path: Path) -> None:
    sink = sink_for(keep_alive.url, tmp_path)
    outcomes = [await sink.send(batch(1 + 3 * i)) for i in range(5)]
    await sink.close()
    assert all(isinstance(o, Accepted) and o.answer.accepted == 3 for o in outcomes)
    assert keep_alive.connections == 1
    assert sorted(keep_alive.stored) == list(range(1, 16))


async def test_collector_closing_an_idle_connection_is_not_a_failure(
    keep_alive: Receiver, tmp_path: Path
) -> None:
    sink = sink_for(keep_alive.url, tmp_path)
    assert isinstance(await sink.send(batch(1)), Accepted)
    await asyncio.sleep(0.6)  # the receiver closes it after 0.3 s idle, as uvicorn does after 5 s
    second = await sink.send(batch(4))
    await sink.close()
    assert isinstance(second, Accepted), second
    assert keep_alive.connections == 2


async def test_tls_verified_against_the_configured_ca(server_cert: Cert, tmp_path: Path) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(server_cert.cert, server_cert.key)
    for receiver in running(Receiver(tls=ctx, keep_alive=True)):
        trusted = sink_for(receiver.url, tmp_path, ca_file=str(server_cert.cert))
        assert isinstance(await trusted.send(batch(1)), Accepted)
        await trusted.close()
        stranger = sink_for(receiver.url, tmp_path)  # the system store does not know this CA
        refused = await stranger.send(batch(4))
        await stranger.close()
        assert isinstance(refused, Retry)
        assert "SSLCertVerificationError" in refused.reason
        assert sorted(receiver.stored) == [1, 2, 3]


async def test_client_certificate_when_the_collector_requires_one(
    server_cert: Cert, client_cert: Cert, tmp_path: Path
) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(server_cert.cert, server_cert.key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(client_cert.cert)
    for receiver in running(Receiver(tls=ctx)):
        common = {"ca_file": str(server_cert.cert)}
        with_cert = sink_for(
            receiver.url,
            tmp_path,
            **common,
            client_cert=str(client_cert.cert),
            client_key=str(client_cert.key),
        )
        assert isinstance(await with_cert.send(batch(1)), Accepted)
        without = sink_for(receiver.url, tmp_path, **common)
        outcome = await without.send(batch(4))
        assert isinstance(outcome, Retry)
        assert outcome.reason.startswith("transport:")
        await with_cert.close()
        await without.close()
        assert sorted(receiver.stored) == [1, 2, 3]


async def test_an_endless_answer_is_cut_off(tmp_path: Path) -> None:
    for receiver in running(Receiver()):
        huge = b"[" + b" " * (MAX_ANSWER_BYTES + 10) + b"]"
        receiver.script.append(Behaviour("status", 200, {"Content-Type": "application/json"}, huge))
        outcome = await sink_for(receiver.url, tmp_path).send(batch(1))
        assert isinstance(outcome, Retry)
        assert "too large" in outcome.reason


async def test_a_collector_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        sink = sink_for(url, tmp_path, timeout=0.3)
        started = time.monotonic()
        outcome = await sink.send(batch(1))
        await sink.close()
    assert isinstance(outcome, Retry)
    assert "TimeoutError" in outcome.reason
    assert time.monotonic() - started < 3


async def test_a_reused_connection_reset_mid_request_is_resent_once(
    keep_alive: Receiver, tmp_path: Path
) -> None:
    sink = sink_for(keep_alive.url, tmp_path)
    assert isinstance(await sink.send(batch(1)), Accepted)
    # The collector stores the batch, then the connection dies before the answer (an idle-timeout race).
    keep_alive.script.append(Behaviour("reset_after_store"))
    second = await sink.send(batch(4))
    await sink.close()
    assert isinstance(second, Accepted), second  # resent at once on a new connection, not a backoff
    assert second.answer.duplicates == 3  # stored once, counted as duplicates the second time
    assert keep_alive.connections == 2
    assert sorted(keep_alive.stored) == list(range(1, 7))
