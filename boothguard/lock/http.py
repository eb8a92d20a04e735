"""The local away endpoint for CTI/softphone software: 127.0.0.1 only, bearer token, CORS by exact origin.

A deliberately small HTTP/1.1 server (one request per connection, bounded head and body, read deadlines):
a random web page in the operator's browser can reach 127.0.0.1, so every request must carry the token
(which a page cannot read) and a browser origin must be listed. POST needs `application/json`, which
forces a CORS preflight for cross-origin pages.

Budgets are split so that unauthenticated peers cannot starve the real CTI client: the token is checked
on the head alone, before any body is read; unauthenticated requests draw on their own token bucket (and
get a bodiless 429 once it is empty), authenticated ones on another; connections still sending
their head are a bounded pool where a new arrival evicts the oldest (an idle flood cannot keep the client
out), and only authenticated requests count against `max_connections`.

    POST /v1/away  {"reason": "…", "session": "…"?}  → 202 {"accepted": true}
    POST /v1/back  {"session": "…"?}                 → 200 {"ended": [...]}
    GET  /v1/state                                   → 200 the lock status
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from boothguard import log

MAX_HEAD = 8192
READ_TIMEOUT = 5.0
HEAD_TIMEOUT = 2.0  # a local client sends its head at once; a slow one is a flooder
PENDING_PER_CONNECTION = 4  # head-pending pool = max_connections x this
_log = log.get("lock.http")

AwayFn = Callable[[str, str | None], Awaitable[None]]
BackFn = Callable[[str | None], Awaitable[list[str]]]
StateFn = Callable[[], Mapping[str, Any]]


def load_or_create_token(path: Path, group: str) -> str:
    """Read the token; create it (0640, root:group) if missing. The group's members (CTI software) read it."""
    try:
        token = path.read_text(encoding="utf-8").strip()
        if len(token) >= 16:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, token.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        gid = grp.getgrnam(group).gr_gid
        os.chown(tmp, -1, gid)
        os.chmod(tmp, 0o640)
    except (KeyError, PermissionError) as exc:
        _log.warning("cti_token_group_missing", group=group, error=str(exc))
    os.replace(tmp, path)
    return token


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self.tokens = float(burst)
        self.last = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    length: int = 0


@dataclass
class HttpStats:
    served: int = 0
    unauthorized: int = 0
    forbidden_origin: int = 0
    bad_request: int = 0
    rate_limited: int = 0
    refused_connections: int = 0
    unauth_dropped: int = 0
    evicted: int = 0


class AwayHttpServer:
    def __init__(
        self,
        *,
        port: int,
        token: str,
        allowed_origins: list[str],
        max_body: int,
        bucket: TokenBucket,
        unauth_bucket: TokenBucket,
        max_connections: int,
        on_away: AwayFn,
        on_back: BackFn,
        state: StateFn,
    ) -> None:
        self.port = port
        self.token = token
        self.allowed_origins = set(allowed_origins)
        self.max_body = max_body
        self.bucket = bucket
        self.unauth_bucket = unauth_bucket
        self.max_connections = max_connections
        self.on_away, self.on_back, self.state = on_away, on_back, state
        self.stats = HttpStats()
        self._active = 0  # authenticated requests in progress
        self._pending: dict[asyncio.StreamWriter, None] = {}  # still sending their head, oldest first
        self._server: asyncio.AbstractServer | None = None

    @property
    def bound_port(self) -> int:
        assert isinstance(self._server, asyncio.Server)
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, limit=MAX_HEAD)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._pending) >= self.max_connections * PENDING_PER_CONNECTION:
            oldest = next(iter(self._pending))  # evict, never refuse: the newest may be the real client
            self._pending.pop(oldest)
            oldest.close()
            self.stats.evicted += 1
        self._pending[writer] = None
        origin: str | None = None
        counted = False
        try:
            try:
                try:
                    async with asyncio.timeout(HEAD_TIMEOUT):
                        request = await self._read(reader)
                finally:
                    self._pending.pop(writer, None)
                origin = request.headers.get("origin")
                if not self._authenticated(request):
                    if not self.unauth_bucket.take():
                        # Over budget: a 429 from the head alone, no body read.
                        self.stats.unauth_dropped += 1
                        self.stats.rate_limited += 1
                        raise HttpError(HTTPStatus.TOO_MANY_REQUESTS, "rate limited")
                else:
                    if self._active >= self.max_connections:
                        self.stats.refused_connections += 1
                        raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "too many requests in progress")
                    if not self.bucket.take():
                        self.stats.rate_limited += 1
                        raise HttpError(HTTPStatus.TOO_MANY_REQUESTS, "rate limited")
                    self._active += 1
                    counted = True
                    async with asyncio.timeout(READ_TIMEOUT):
                        await self._read_body(reader, request)
                status, body = await self._handle(request)
            except HttpError as exc:
                status, body = exc.status, {"error": str(exc)}
            except TimeoutError:
                status, body = HTTPStatus.REQUEST_TIMEOUT, {"error": "request timeout"}
            await self._respond(writer, status, body, origin)
        except (ConnectionError, OSError):
            pass
        finally:
            if counted:
                self._active -= 1
            writer.close()

    def _authenticated(self, req: Request) -> bool:
        scheme, _, given = req.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    async def _read(self, reader: asyncio.StreamReader) -> Request:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.LimitOverrunError, ValueError):
            raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large") from None
        except asyncio.IncompleteReadError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "incomplete request") from None
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad request line") from None
        if not version.startswith("HTTP/1."):
            raise HttpError(HTTPStatus.BAD_REQUEST, "HTTP/1.x only")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip() or name != name.strip():
                raise HttpError(HTTPStatus.BAD_REQUEST, "bad header")
            key = name.lower()
            if key in headers and key in ("authorization", "origin", "content-length"):
                raise HttpError(HTTPStatus.BAD_REQUEST, f"duplicate {key}")
            headers[key] = value.strip()
        request = Request(method, target.split("?", 1)[0], headers)
        if "transfer-encoding" in headers:
            raise HttpError(HTTPStatus.NOT_IMPLEMENTED, "chunked bodies are not accepted")
        length_text = headers.get("content-length", "0")
        if not (length_text.isascii() and length_text.isdigit()):  # isdigit() alone takes "¹"
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad content-length")
        length = int(length_text)
        if length > self.max_body:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {self.max_body} bytes")
        request.length = length
        return request

    async def _read_body(self, reader: asyncio.StreamReader, request: Request) -> None:
        """Only for an authenticated head: nobody else makes us read (or wait for) a body."""
        if request.length:
            try:
                request.body = await reader.readexactly(request.length)
            except asyncio.IncompleteReadError:
                raise HttpError(HTTPStatus.BAD_REQUEST, "incomplete body") from None

    async def _handle(self, req: Request) -> tuple[int, Mapping[str, Any]]:
        origin = req.headers.get("origin")
        if origin is not None and origin not in self.allowed_origins:
            self.stats.forbidden_origin += 1
            _log.warning("cti_origin_refused", origin=origin[:200])
            raise HttpError(HTTPStatus.FORBIDDEN, "origin not allowed")
        routes = {"/v1/away": "POST", "/v1/back": "POST", "/v1/state": "GET"}
        if req.path not in routes:
            raise HttpError(HTTPStatus.NOT_FOUND, "not found")
        if req.method == "OPTIONS":
            return HTTPStatus.NO_CONTENT, {}
        if req.method != routes[req.path]:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
        if not self._authenticated(req):
            self.stats.unauthorized += 1
            raise HttpError(HTTPStatus.UNAUTHORIZED, "bad or missing token")
        if req.method == "GET":
            self.stats.served += 1
            return HTTPStatus.OK, dict(self.state())
        if req.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            self.stats.bad_request += 1
            raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "application/json only")
        body = self._json_body(req.body)
        session = body.get("session")
        if session is not None and (not isinstance(session, str) or not 0 < len(session) <= 64):
            self.stats.bad_request += 1
            raise HttpError(HTTPStatus.BAD_REQUEST, "session must be a short string")
        self.stats.served += 1
        if req.path == "/v1/away":
            reason = body.get("reason", "")
            if not isinstance(reason, str):
                self.stats.bad_request += 1
                raise HttpError(HTTPStatus.BAD_REQUEST, "reason must be a string")
            await self.on_away(reason, session)
            return HTTPStatus.ACCEPTED, {"accepted": True}
        return HTTPStatus.OK, {"ended": await self.on_back(session)}

    def _json_body(self, raw: bytes) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self.stats.bad_request += 1
            raise HttpError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
        if not isinstance(body, dict):
            self.stats.bad_request += 1
            raise HttpError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return body

    async def _respond(
        self, writer: asyncio.StreamWriter, status: int, body: Mapping[str, Any], origin: str | None
    ) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode() if status != 204 else b""
        phrase = HTTPStatus(status).phrase
        head = [
            f"HTTP/1.1 {status} {phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            "Connection: close",
            "Cache-Control: no-store",
            "Vary: Origin",
        ]
        if origin is not None and origin in self.allowed_origins:
            head += [
                f"Access-Control-Allow-Origin: {origin}",
                "Access-Control-Allow-Methods: GET, POST, OPTIONS",
                "Access-Control-Allow-Headers: Authorization, Content-Type",
                "Access-Control-Max-Age: 600",
            ]
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            head.append("Retry-After: 1")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        with contextlib.suppress(ConnectionError, OSError):
            async with asyncio.timeout(READ_TIMEOUT):
                await writer.drain()
