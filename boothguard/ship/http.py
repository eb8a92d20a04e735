"""HTTPS sink: gzipped NDJSON to the collector over one kept-alive HTTP/1.1 connection; all replies here.

HTTP/1.1 framing is h11's; this module only moves its bytes over asyncio streams. (httpx, used by the
CLI, costs the agent 7 MB of its 40 MB budget at import, for one POST to one host.)
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from time import time
from urllib.parse import urlsplit

import h11
from isal import igzip
from pydantic import ValidationError

from boothguard import __version__, log
from boothguard.ship.settings import ShipSection
from boothguard.ship.sink import Accepted, Batch, Outcome, Retry, Split
from boothguard.wire import IngestAnswer

_log = log.get("ship.http")
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # an ingest answer is small; more is not the collector talking


def ssl_context(ca_file: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # rare: a date instead of seconds

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    content: bytes


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.used = False

    @property
    def reusable(self) -> bool:
        # The collector closing an idle keep-alive connection shows up as EOF already read.
        return self.h11.our_state is h11.IDLE and not self.reader.at_eof()

    async def request(self, target: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        self.used = True
        conn = self.h11
        out = conn.send(h11.Request(method="POST", target=target, headers=headers)) or b""
        out += (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
        self.writer.write(out)
        await self.writer.drain()
        status, reply_headers, chunks, size = 0, {}, [], 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await self.reader.read(65536))  # b"" at EOF: h11 reports it
            elif isinstance(event, h11.Response):
                status = event.status_code
                reply_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_ANSWER_BYTES:
                    raise h11.RemoteProtocolError("answer too large")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("collector closed the connection mid-answer")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        return Reply(status, reply_headers, b"".join(chunks))

    def close(self) -> None:
        self.writer.close()


class HttpSink:
    def __init__(self, settings: ShipSection, token_file: Path, *, compress_level: int = 1) -> None:
        url = urlsplit(settings.collector_url.rstrip("/") + "/v1/events")
        self.url = url.geturl()
        self.tls = url.scheme == "https"
        self.host = url.hostname or "localhost"
        self.port = url.port or (443 if self.tls else 80)
        self.target = url.path + (f"?{url.query}" if url.query else "")
        self.token_file = token_file
        self.compress_level = compress_level
        self.timeout = settings.timeout
        self._ssl = (
            ssl_context(settings.ca_file, settings.client_cert, settings.client_key) if self.tls else None
        )
        self._fixed = [
            ("Host", url.netloc),
            ("User-Agent", f"boothguard-agent/{__version__}"),
            ("Content-Type", "application/x-ndjson"),
            ("Content-Encoding", "gzip"),
            ("Accept", "application/json"),
        ]
        self._conn: _Connection | None = None

    def _token(self) -> str | None:
        # Read each time: `boothguard enroll` may write it while the agent runs.
        try:
            return self.token_file.read_text().strip() or None
        except OSError:
            return None

    def encode(self, ndjson: bytes) -> bytes:
        return igzip.compress(ndjson, self.compress_level)

    async def send(self, batch: Batch) -> Outcome:
        token = self._token()
        if token is None:
            return Retry(f"no token in {self.token_file}; run boothguard enroll")
        body = batch.payload if batch.payload is not None else self.encode(batch.ndjson)
        headers = [
            *self._fixed,
            ("Authorization", f"Bearer {token}"),
            ("Content-Length", str(len(body))),
        ]
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._post(headers, body)
        except (OSError, TimeoutError, EOFError, h11.ProtocolError) as exc:
            self._drop()
            return Retry(f"transport: {type(exc).__name__}: {exc}")
        return classify(reply)

    async def _post(self, headers: list[tuple[str, str]], body: bytes) -> Reply:
        conn = self._conn
        if conn is not None and conn.reusable:
            try:
                return await conn.request(self.target, headers, body)
            except (ConnectionError, h11.RemoteProtocolError):
                # A kept-alive connection the collector had already closed: once more on a new one.
                # Safe to resend: the collector stores each seq once and counts the duplicate.
                _log.debug("ship_reconnect")
        self._drop()
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self._ssl, server_hostname=self.host if self.tls else None
        )
        self._conn = conn = _Connection(reader, writer)
        return await conn.request(self.target, headers, body)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        self._drop()


def classify(reply: Reply) -> Outcome:
    status = reply.status
    if 200 <= status < 300:
        try:
            return Accepted(IngestAnswer.model_validate_json(reply.content))
        except ValidationError:
            kind = reply.headers.get("content-type", "?")
            return Retry(f"http {status}: not an ingest answer ({kind})", status=status)
    if status in (413, 400):
        return Split(f"http {status}")
    if status in (429, 503):
        return Retry(f"http {status}", retry_after(reply.headers.get("retry-after")), status)
    return Retry(f"http {status}", status=status)
