"""The agent's quarantine door: a unix socket where a bound watcher hands over an open fd (SCM_RIGHTS).

One request per connection: `{"session_id", "name"}` with exactly one fd in the same message → one JSON
line `{"ok", "quarantined", "bytes"}` or `{"ok": false, "error"}`. The sender must be the registered watcher
of that session (SO_PEERCRED uid and pid), so another local user cannot fill the quarantine in its name.
Opened only when the screenshot policy is `quarantine`.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from boothguard import log
from boothguard.session.quarantine import QuarantineError, quarantine_fd

_log = log.get("sessions.quarantine")
MAX_REQUEST = 4096
REQUEST_TIMEOUT = 5.0
SOCKET_NAME = "quarantine.sock"

# session_id → (uid, pid) of its registered, alive watcher, or None.
Binding = Callable[[str], tuple[int, int] | None]


def door_path(agent_socket: Path) -> Path:
    return agent_socket.with_name(SOCKET_NAME)


def _recv_one(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One message and the fds that came with it; every fd received is returned (the caller closes)."""
    fds = array.array("i")
    msg, anc, flags, _ = conn.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
        return {"_error": "message truncated"}, list(fds)
    try:
        req = json.loads(msg)
    except ValueError:
        return {"_error": "bad request"}, list(fds)
    return (req if isinstance(req, dict) else {"_error": "bad request"}), list(fds)


class QuarantineDoor:
    def __init__(
        self,
        path: Path,
        binding: Binding,
        *,
        qdir: Path,
        max_bytes: int,
        wall_clock: Callable[[], float],
        on_done: Callable[[str, bool, dict[str, Any]], None],
    ) -> None:
        self.path = path
        self.binding = binding
        self.qdir = qdir
        self.max_bytes = max_bytes
        self.wall_clock = wall_clock
        self.on_done = on_done
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = asyncio.Semaphore(2)  # copies are disk-bound; two at a time is plenty

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o666)  # noqa: S103 -- any operator may knock; the peer check decides
        sock.listen(16)
        sock.setblocking(False)
        self._sock = sock
        self._task = asyncio.create_task(self._accept())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sock is not None:
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _accept(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            if len(tasks) >= 16:  # bounded: a flood of idle knocks is shed, not queued
                conn.close()
                continue
            task = asyncio.create_task(self._serve(conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _serve(self, conn: socket.socket) -> None:
        with conn:
            async with self._busy:
                reply = await asyncio.to_thread(self._handle, conn)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(conn.sendall, json.dumps(reply).encode())

    def _handle(self, conn: socket.socket) -> dict[str, Any]:
        conn.setblocking(True)
        conn.settimeout(REQUEST_TIMEOUT)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", creds)
        try:
            req, fds = _recv_one(conn)
        except OSError as exc:
            return {"ok": False, "error": f"receive failed: {exc.strerror or exc}"}
        session_id = str(req.get("session_id", ""))[:64]
        try:
            if "_error" in req:
                return self._refuse(session_id, uid, str(req["_error"]))
            if len(fds) != 1:
                return self._refuse(session_id, uid, "exactly one file descriptor needed")
            bound = self.binding(session_id)
            if bound is None or bound != (uid, pid):
                return self._refuse(session_id, uid, "not the registered watcher of this session")
            try:
                name, size = quarantine_fd(
                    fds[0],
                    uid,
                    str(req.get("name", "")),
                    qdir=self.qdir,
                    max_bytes=self.max_bytes,
                    now=self.wall_clock(),
                )
            except (QuarantineError, OSError) as exc:
                return self._refuse(session_id, uid, str(exc))
            _log.info("quarantined", session=session_id, name=name, bytes=size)
            self.on_done(session_id, True, {"name": name, "bytes": size})
            return {"ok": True, "quarantined": name, "bytes": size}
        finally:
            for fd in fds:
                os.close(fd)

    def _refuse(self, session_id: str, uid: int, error: str) -> dict[str, Any]:
        _log.warning("quarantine_refused", session=session_id, uid=uid, error=error)
        self.on_done(session_id, False, {"error": error, "uid": uid})
        return {"ok": False, "error": error}


def hand_over(door: Path, session_id: str, fd: int, name: str, timeout: float = 10.0) -> dict[str, Any]:
    """Watcher side (blocking): pass `fd` to the agent's door and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        sock.connect(str(door))
        payload = json.dumps({"session_id": session_id, "name": name}).encode()
        sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        answer = sock.recv(MAX_REQUEST)
    reply = json.loads(answer) if answer else {"ok": False, "error": "no answer"}
    return reply if isinstance(reply, dict) else {"ok": False, "error": "bad answer"}
