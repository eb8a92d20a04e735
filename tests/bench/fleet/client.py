"""One HTTP/1.1 POST on a fresh loopback connection, in raw asyncio streams (cheap enough to drive 10,000
booths from the same 2 cores as the collector).

A fresh connection per request is what booths do: a booth posts about twice a minute and uvicorn closes a
kept-alive connection after 5 idle seconds, so the shipper connects anew almost every time.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_head(port: int, path: str, token: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: boothguard-fleet-sim\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\nContent-Encoding: gzip\r\n"
        f"Accept: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


async def post(port: int, path: str, token: str, body: bytes, *, timeout: float) -> Answer:
    """Raises OSError / TimeoutError / ValueError (a reply that is not HTTP) like a real transport."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request_head(port, path, token, len(body)) + body)
            await writer.drain()
            reply = await reader.read()  # Connection: close — the server ends the reply with EOF
        finally:
            writer.close()
    return parse(reply)


def parse(reply: bytes) -> Answer:
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"truncated HTTP reply ({len(reply)} bytes)")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP status line: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return Answer(int(parts[1]), headers, body)


def _unchunk(data: bytes) -> bytes:
    out, pos = [], 0
    while True:
        line_end = data.index(b"\r\n", pos)
        size = int(data[pos:line_end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[line_end + 2 : line_end + 2 + size])
        pos = line_end + 4 + size
