"""The CTI endpoint on 127.0.0.1: token, origins, malformed input and floods against a real socket."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx

from tests.lock.conftest import Harness
from tests.lock.mocklogind import MockLogind

GOOD_ORIGIN = "https://cti.example.local"


async def raw(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send raw bytes, return (status, whole response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            response = await reader.read()
    finally:
        writer.close()
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0
    return status, response


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def cti_harness(make_harness: Any, rate: float = 5.0, burst: int = 20) -> tuple[Harness, str, int]:
    """The plugin's own endpoint on a free loopback port; the token file is created by the agent."""
    port = free_port()
    h: Harness = await make_harness(
        http_port=port,
        http_allowed_origins=[GOOD_ORIGIN],
        http_token_group="root",
        http_rate_per_second=rate,
        http_rate_burst=burst,
    )
    token = Path(h.config.agent.state_dir, "cti.token").read_text().strip()  # noqa: ASYNC240 -- tiny local file
    assert h.lock.http is not None
    assert h.lock.http.bound_port == port
    return h, token, port


async def test_token_origin_and_bodies(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1")
    h, token, port = await cti_harness(make_harness, burst=1000)
    mode = Path(h.config.agent.state_dir, "cti.token").stat().st_mode  # noqa: ASYNC240 -- tiny local file
    assert oct(mode & 0o777) == "0o640"
    url = f"http://127.0.0.1:{port}/v1/away"
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.post(url, json={"reason": "x"})
        assert r.status_code == 401
        r = await client.post(
            url, json={"reason": "x"}, headers={"Authorization": "Bearer wrong-token-000000"}
        )
        assert r.status_code == 401
        r = await client.post(url, json={}, headers={**auth, "Origin": "https://evil.example"})
        assert r.status_code == 403
        assert "access-control-allow-origin" not in r.headers
        # a browser preflight from a foreign page is refused, from the CTI app allowed
        r = await client.options(url, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        r = await client.options(url, headers={"Origin": GOOD_ORIGIN})
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == GOOD_ORIGIN
        # malformed bodies
        r = await client.post(url, content=b"{not json", headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 400
        r = await client.post(url, content=b"[1,2]", headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 400
        r = await client.post(url, json={"reason": 5}, headers=auth)
        assert r.status_code == 400
        r = await client.post(url, json={"session": {"a": 1}}, headers=auth)
        assert r.status_code == 400
        r = await client.post(url, content=b'{"reason":"x"}', headers={**auth, "Content-Type": "text/plain"})
        assert r.status_code == 415
        r = await client.post(url, content=b"x" * 5000, headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 413
        r = await client.get(f"http://127.0.0.1:{port}/v1/nothing", headers=auth)
        assert r.status_code == 404
        r = await client.get(url, headers=auth)
        assert r.status_code == 405
    status, _ = await raw(port, b"GARBAGE\r\n\r\n")
    assert status == 400
    status, _ = await raw(port, b"POST /v1/away HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n")
    assert status == 431
    status, _ = await raw(
        port,
        b"POST /v1/away HTTP/1.1\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\n\r\n",
    )
    assert status == 501
    status, _ = await raw(port, b"POST /v1/away HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
    assert status == 400
    await asyncio.sleep(0.3)
    assert logind.calls("LockSession") == []
    assert h.of_type("away.started") == []
    # the right token from the listed origin locks
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.post(url, json={"reason": "離席"}, headers={**auth, "Origin": GOOD_ORIGIN})
        assert r.status_code == 202
        assert r.headers["access-control-allow-origin"] == GOOD_ORIGIN
    started = await h.wait_event("away.started")
    assert started.data == {"session": "c1", "source": "http", "reason": "離席"}
    await h.wait_event("screen.locked")
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(f"http://127.0.0.1:{port}/v1/state", headers=auth)
        assert r.status_code == 200
        assert r.json()["away"][0]["session"] == "c1"
        r = await client.post(
            f"http://127.0.0.1:{port}/v1/back", headers={**auth, "Origin": "https://evil.example"}
        )
        assert r.status_code == 403
        assert len(h.lock.controller.records) == 1  # type: ignore[union-attr]
        r = await client.post(f"http://127.0.0.1:{port}/v1/back", json={}, headers=auth)
        assert r.json() == {"ended": ["c1"]}
    ended = await h.wait_event("away.ended")
    assert ended.data["source"] == "http"


async def test_flood_is_bounded_and_nothing_locks(logind: MockLogind, make_harness: Any) -> None:
    logind.add_session("c1")
    h, token, port = await cti_harness(make_harness, rate=5.0, burst=20)
    sem = asyncio.Semaphore(12)
    statuses: list[int] = []

    async def one(i: int) -> None:
        async with sem:
            kind = i % 4
            if kind == 0:
                data = (
                    b"POST /v1/away HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                )
            elif kind == 1:
                data = (
                    b"POST /v1/away HTTP/1.1\r\nAuthorization: Bearer nope\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                )
            elif kind == 2:
                data = b"\x00\xff" * 100 + b"\r\n\r\n"
            else:
                data = b"POST /v1/back HTTP/1.1\r\nOrigin: https://evil.example\r\nContent-Length: 0\r\n\r\n"
            try:
                status, _ = await raw(port, data)
            except (ConnectionError, TimeoutError):
                status = -1
            statuses.append(status)

    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(400))), timeout=60)
    elapsed = loop.time() - began
    assert len(statuses) == 400
    # the bucket held: only burst + rate x elapsed requests got past it (malformed ones stop before it)
    passed = statuses.count(401) + statuses.count(403)
    assert passed <= 20 + 5.0 * elapsed + 1, (passed, elapsed)
    assert statuses.count(429) >= 300 - passed - statuses.count(400) - statuses.count(-1)
    assert all(s in (400, 401, 403, 429, -1) for s in statuses), set(statuses)
    assert logind.calls("LockSession") == []
    assert h.of_type("away.started") == []
    stats = h.lock.status()["http"]
    assert stats["rate_limited"] == statuses.count(429)
    # still up and serving once the bucket refills
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(
            f"http://127.0.0.1:{port}/v1/state", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200
        assert json.loads(r.text)["logind"] == "connected"
