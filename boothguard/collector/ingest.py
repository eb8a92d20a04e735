"""Reading an ingest body: bounded before and after gzip, split into NDJSON lines, each validated."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from boothguard.events import Event

# The envelope's fields, in the sorted order canonical JSON puts them; the fast hash below assumes them.
_FIELDS = ("agent", "data", "hash", "host", "id", "prev_hash", "seq", "severity", "time", "type", "user")
_FAST = tuple(sorted(Event.model_fields)) == _FIELDS
_esc = json.encoder.encode_basestring  # the C string escaper json.dumps uses
_data_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def hash_ok(ev: Event) -> bool:
    """`ev.hash_ok()`, about twice as fast: only `data` goes through the generic sorted-key encoder.

    Produces the same bytes as `boothguard.events.canonical_json`; a mismatch is re-checked the slow way, so
    a change to the envelope can cost speed, never correctness.
    """
    if _FAST and hashlib.sha256(fast_canonical(ev).encode()).hexdigest() == ev.hash:
        return True
    return ev.hash_ok()


def fast_canonical(ev: Event) -> str:
    """The canonical JSON of `ev` without its hash (what the chain hashes), built field by field."""
    user = "null" if ev.user is None else _esc(ev.user)
    return (
        f'{{"agent":{{"version":{_esc(ev.agent.version)}}},"data":{_data_json(ev.data)},'
        f'"host":{{"id":{_esc(ev.host.id)},"name":{_esc(ev.host.name)}}},"id":{_esc(ev.id)},'
        f'"prev_hash":{_esc(ev.prev_hash)},"seq":{ev.seq},"severity":{_esc(ev.severity)},'
        f'"time":{_esc(ev.time)},"type":{_esc(ev.type)},"user":{user}}}'
    )


class BodyError(Exception):
    """The request body as a whole is refused; `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Line:
    index: int
    event: Event
    raw: str


@dataclass(frozen=True)
class Rejection:
    index: int
    error: str
    # A line that parsed as an event but whose hash does not match: also a chain finding.
    bad_hash_seq: int | None = None

    def answer(self) -> dict[str, Any]:
        return {"index": self.index, "error": self.error}


class _Gunzip:
    """Streaming gzip (several members allowed) that never produces more than `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.out = bytearray()
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._members = 0
        self._in_member = False  # the current decompressor has been fed and has not reached its end

    def feed(self, data: bytes) -> None:
        while data:
            self._in_member = True
            room = self.limit - len(self.out)
            chunk = self._d.decompress(data, room + 1)
            self.out += chunk
            if len(self.out) > self.limit:
                raise BodyError(413, f"body larger than {self.limit} bytes after decompression")
            data = self._d.unconsumed_tail
            if self._d.eof:
                data = self._d.unused_data + data
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._members += 1
                self._in_member = False

    def finish(self) -> bytes:
        rest = self._d.flush()
        self.out += rest
        if len(self.out) > self.limit:
            raise BodyError(413, f"body larger than {self.limit} bytes after decompression")
        if self._in_member or not self._members:
            raise BodyError(400, "truncated gzip body")
        return bytes(self.out)


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    encoding: str | None,
    content_length: str | None,
    max_body: int,
    max_decompressed: int,
) -> bytes:
    enc = (encoding or "identity").strip().lower()
    if enc not in ("identity", "gzip", "x-gzip"):
        raise BodyError(415, f"unsupported content-encoding {enc!r}")
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BodyError(400, "bad content-length") from None
        if declared > max_body:
            raise BodyError(413, f"body larger than {max_body} bytes")
    gunzip = _Gunzip(max_decompressed) if enc != "identity" else None
    plain = bytearray()
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_body:
                raise BodyError(413, f"body larger than {max_body} bytes")
            if gunzip is not None:
                gunzip.feed(chunk)
            else:
                plain += chunk
        return gunzip.finish() if gunzip is not None else bytes(plain)
    except zlib.error as exc:
        raise BodyError(400, f"bad gzip body: {exc}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "event"
    return f"{where}: {err['msg']}"[:300]


def parse_lines(body: bytes, *, max_event_bytes: int, max_events: int) -> tuple[list[Line], list[Rejection]]:
    """Validate each NDJSON line as a sealed event; bad lines become per-event rejections."""
    parts = body.split(b"\n")
    if parts and not parts[-1].strip():
        parts.pop()
    if len(parts) > max_events:
        raise BodyError(413, f"more than {max_events} events in one request")
    lines: list[Line] = []
    rejected: list[Rejection] = []
    for index, part in enumerate(parts):
        if len(part) > max_event_bytes:
            rejected.append(Rejection(index, f"event larger than {max_event_bytes} bytes"))
            continue
        try:
            event = Event.model_validate_json(part, strict=True)
        except ValidationError as exc:
            rejected.append(Rejection(index, _first_error(exc)))
            continue
        if not hash_ok(event):
            rejected.append(Rejection(index, "hash does not match the event", bad_hash_seq=event.seq))
            continue
        lines.append(Line(index, event, part.decode()))
    return lines, rejected
