"""HTTPS sink: gzipped NDJSON to the collector; all reply handling in one place."""

from __future__ import annotations

import ssl
from email.utils import parsedate_to_datetime
from pathlib import Path
from time import time

import httpx
from isal import igzip
from pydantic import ValidationError

from boothguard import log
from boothguard.ship.settings import ShipSection
from boothguard.ship.sink import Accepted, Batch, Outcome, Retry, Split
from boothguard.wire import IngestAnswer

_log = log.get("ship.http")


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
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


class HttpSink:
    def __init__(self, settings: ShipSection, token_file: Path, *, compress_level: int = 1) -> None:
        self.url = settings.collector_url.rstrip("/") + "/v1/events"
        self.token_file = token_file
        self.compress_level = compress_level
        verify: ssl.SSLContext | bool = True
        if self.url.startswith("https:"):
            verify = ssl_context(settings.ca_file, settings.client_cert, settings.client_key)
        self._client = httpx.AsyncClient(verify=verify, timeout=settings.timeout)

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
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "gzip",
        }
        try:
            resp = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Retry(f"transport: {type(exc).__name__}: {exc}")
        return classify(resp)

    async def close(self) -> None:
        await self._client.aclose()


def classify(resp: httpx.Response) -> Outcome:
    status = resp.status_code
    if 200 <= status < 300:
        try:
            return Accepted(IngestAnswer.model_validate_json(resp.content))
        except ValidationError:
            return Retry(f"http {status}: not an ingest answer ({resp.headers.get('content-type', '?')})")
    if status in (413, 400):
        return Split(f"http {status}")
    if status in (429, 503):
        return Retry(f"http {status}", retry_after(resp.headers.get("retry-after")))
    return Retry(f"http {status}")
