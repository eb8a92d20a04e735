"""The control socket: newline-delimited JSON over a Unix stream socket, peers checked with SO_PEERCRED.

A request is `{"op": NAME, "id": optional, ...}`; the reply echoes `id` with `"ok": true|false` and, on
failure, `"error"` and `"code"` (an exit code of SPEC §2). The agent may also push `{"push": NAME, ...}`
messages to long-lived connections (the session watcher).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import pwd
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boothguard import log
from boothguard.agent import access as trust
from boothguard.agent.plugin import Access, Handler, Reply
from boothguard.errors import EXIT_PERMISSION, EXIT_USAGE

# Small per-connection buffers: idle connections from any uid must not grow the agent (the trust table).
MAX_LINE = trust.MAX_LINE_BYTES
_log = log.get("control")


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    def in_group(self, group: str) -> bool:
        try:
            g = grp.getgrnam(group)
        except KeyError:
            return False
        if self.gid == g.gr_gid:
            return True
        return self.user in g.gr_mem


def peer_of(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer) -> None:
        self.reader, self.writer, self.peer = reader, writer, peer
        self._lock = asyncio.Lock()
        self.closed = asyncio.Event()

    async def send(self, message: Mapping[str, Any]) -> None:
        async with self._lock:
            self.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            await self.writer.drain()


class ControlServer:
    def __init__(self, path: Path, emitter_group: str) -> None:
        self.path = path
        self.emitter_group = emitter_group
        self._handlers: dict[str, tuple[Handler, Access]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[Connection] = set()
        self._per_uid: dict[int, int] = {}
        self.refused_connections = 0

    def register(self, op: str, handler: Handler, access: Access) -> None:
        if op in self._handlers:
            raise ValueError(f"control op {op!r} registered twice")
        self._handlers[op] = (handler, access)

    def allowed(self, peer: Peer, access: Access) -> bool:
        if access == "any" or peer.is_root:
            return True
        return access == "emitter" and peer.in_group(self.emitter_group)

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE)
        # Anyone may connect (status is public); each op checks the peer's credentials.
        os.chmod(self.path, 0o666)  # noqa: S103 -- access is decided per op from SO_PEERCRED

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self._connections):
                conn.writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        peer = peer_of(sock)
        held = self._per_uid.get(peer.uid, 0)
        if not peer.is_root and held >= trust.MAX_CONNECTIONS_PER_UID:
            # Refused before any buffer is read into: one uid cannot starve the socket or the agent's RSS.
            self.refused_connections += 1
            if self.refused_connections in (1, 10, 100) or self.refused_connections % 1000 == 0:
                _log.warning(
                    "control_connection_cap",
                    uid=peer.uid,
                    pid=peer.pid,
                    held=held,
                    refused_total=self.refused_connections,
                )
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(b'{"ok":false,"error":"too many connections for this uid","code":75}\n')
            writer.close()
            return
        with contextlib.suppress(OSError):  # a small kernel buffer too (the default is ~200 KiB each way)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        self._per_uid[peer.uid] = held + 1
        conn = Connection(reader, writer, peer)
        self._connections.add(conn)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await conn.send({"ok": False, "error": "request line too long", "code": EXIT_USAGE})
                    break
                if not line:
                    break
                await conn.send(await self._dispatch(conn, line))
        except (ConnectionError, OSError):
            pass
        finally:
            conn.closed.set()
            self._connections.discard(conn)
            left = self._per_uid.get(peer.uid, 1) - 1
            if left > 0:
                self._per_uid[peer.uid] = left
            else:
                self._per_uid.pop(peer.uid, None)
            writer.close()

    async def _dispatch(self, conn: Connection, line: bytes) -> Reply:
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "request is not JSON", "code": EXIT_USAGE}
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"ok": False, "error": "request needs an op", "code": EXIT_USAGE}
        op, rid = request["op"], request.get("id")
        entry = self._handlers.get(op)
        if entry is None:
            return {"id": rid, "ok": False, "error": f"unknown op {op}", "code": EXIT_USAGE}
        handler, access = entry
        if not self.allowed(conn.peer, access):
            _log.warning("control_denied", op=op, uid=conn.peer.uid, pid=conn.peer.pid)
            return {"id": rid, "ok": False, "error": "permission denied", "code": EXIT_PERMISSION}
        try:
            reply = await handler(conn.peer, request, conn)
        except Exception as exc:  # one handler's bug must not take the socket down
            _log.exception("control_handler_failed", op=op)
            return {"id": rid, "ok": False, "error": f"internal error: {type(exc).__name__}", "code": 1}
        return {"id": rid, "ok": True, **reply} if "ok" not in reply else {"id": rid, **reply}
