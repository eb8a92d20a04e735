"""Reading an ingest body: bounded before and after gzip."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator


class BodyError(Exception):
    """The request body as a whole is refused; `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
