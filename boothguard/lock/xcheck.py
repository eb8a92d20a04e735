"""The agent's own look at a session's X server: is keyboard and pointer input held by a grab (a locker like
i3lock grabs both), and what the server's screensaver state is.

Trust rules (the operator must not be able to forge the answer; root must not follow the operator's paths):
- The display comes from logind's `Display` property, never from the watcher.
- The server is reached on its abstract socket first (no filesystem path at all), then on /tmp/.X11-unix/XN,
  and it must be run by one of the trusted uids (SO_PEERCRED of the connection): a server the operator runs
  (rootless Xorg, or a fake one) would say whatever the operator wants, so its answer is no proof.
- The cookie is read from the server's own `-auth` file (from its command line), only if every directory on
  the way and the file are root-owned and not writable by others; the operator's ~/.Xauthority is never read.

A tiny X11 client of our own rather than python-xlib: python-xlib opens the socket itself (we must check the
peer of the very connection we talk over) and takes its cookie from $XAUTHORITY or a path (process-global, and
a path the operator may control). Blocking; run it in a thread.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import struct
from dataclasses import dataclass
from typing import Any

DISPLAY = re.compile(r"^(?:unix)?:(\d{1,4})(?:\.\d{1,3})?$")
COOKIE = b"MIT-MAGIC-COOKIE-1"
MAX_AUTH_BYTES = 65536
MAX_SYMLINKS = 8
_GRAB_HELD = {1: "already_grabbed", 4: "frozen"}  # statuses that mean another client holds the grab
_GRAB_STATUS = {0: "success", 1: "already_grabbed", 2: "invalid_time", 3: "not_viewable", 4: "frozen"}
_SAVER_STATE = {0: "off", 1: "on", 2: "cycle", 3: "disabled"}


class XCheckError(Exception):
    """The check could not be made (no local server, untrusted server, no usable cookie, protocol error)."""


@dataclass(frozen=True)
class XState:
    display: str
    server_pid: int
    server_uid: int
    keyboard: str  # our GrabKeyboard's status: "already_grabbed"/"frozen" = someone else holds it
    pointer: str | None  # only asked when the keyboard is held
    screensaver: str | None  # MIT-SCREEN-SAVER state, None when the extension is missing

    @property
    def grabbed(self) -> bool:
        return self.keyboard in _GRAB_HELD.values() and self.pointer in _GRAB_HELD.values()

    def evidence(self) -> dict[str, Any]:
        return {
            "grabbed": self.grabbed,
            "keyboard": self.keyboard,
            "pointer": self.pointer,
            "screensaver": self.screensaver,
            "server_pid": self.server_pid,
        }


def check(display: str, trusted_uids: frozenset[int], timeout: float = 1.0) -> XState:
    """Ask the session's X server ourselves; raises XCheckError when that cannot be done."""
    m = DISPLAY.match(display)
    if m is None:
        raise XCheckError(f"not a local display: {display!r}")
    number = int(m.group(1))
    sock, pid, uid = _connect(number, timeout, trusted_uids)
    try:
        cookie = _server_cookie(pid, number)
        conn = _X11(sock)
        root = conn.setup(cookie)
        keyboard = conn.grab_keyboard(root)
        pointer = conn.grab_pointer(root) if keyboard in _GRAB_HELD.values() else None
        saver = conn.screensaver_state(root)
        return XState(display, pid, uid, keyboard, pointer, saver)
    except (OSError, struct.error) as exc:
        raise XCheckError(f"X server on {display}: {exc}") from None
    finally:
        sock.close()  # closing also releases any grab we obtained


def _connect(number: int, timeout: float, trusted: frozenset[int]) -> tuple[socket.socket, int, int]:
    """The first of the server's sockets whose listener runs as a trusted uid.

    Both are tried: an operator who took the abstract name first (the server then listens on the path only)
    must not turn the check into "cannot check", which would let an unchecked LockedHint count.
    """
    problems: list[str] = []
    # Not a temp file: the X server's well-known socket (S108); who listens on it is checked right here.
    sockets = f"/tmp/.X11-unix/X{number}"  # noqa: S108
    for address in ("\0" + sockets, sockets):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            problems.append(f"{address.replace(chr(0), '@')}: {exc.strerror or exc}")
            continue
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", creds)
        if uid in trusted:
            return sock, pid, uid
        sock.close()
        problems.append(f"X server pid {pid} runs as uid {uid}, not a trusted uid")
    raise XCheckError(f"display :{number}: " + "; ".join(dict.fromkeys(problems)))


# -- the server's cookie -------------------------------------------------------------------------------


def _server_cookie(pid: int, number: int) -> bytes | None:
    """The cookie from the server's `-auth FILE`; None when it runs without one (no access control)."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        args = f.read().split(b"\0")
    path = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == b"-auth"), None)
    if path is None:
        return None
    data = read_root_owned(os.fsdecode(path))
    return pick_cookie(data, number)


def read_root_owned(path: str) -> bytes:
    """Read a file only through root-owned, non-writable-by-others directories (symlinks too), by fd."""
    if not path.startswith("/"):
        raise XCheckError(f"auth path is not absolute: {path!r}")
    parts = [p for p in path.split("/") if p]
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    links = 0
    try:
        _check_owner(fd, "/")
        while parts:
            name = parts.pop(0)
            last = not parts
            flags = os.O_NOFOLLOW | (os.O_RDONLY if last else os.O_PATH | os.O_DIRECTORY)
            try:
                nfd = os.open(name, flags | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode) or links >= MAX_SYMLINKS:
                    raise XCheckError(f"auth file {path}: {exc}") from None
                if st.st_uid != 0:
                    raise XCheckError(f"auth path {path}: symlink {name} not owned by root") from None
                links += 1
                target = os.readlink(name, dir_fd=fd)
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
                parts = [p for p in target.split("/") if p] + parts
                continue
            os.close(fd)
            fd = nfd
            _check_owner(fd, name)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise XCheckError(f"auth file {path} is not a regular file")
        return os.read(fd, MAX_AUTH_BYTES)
    finally:
        os.close(fd)


def _check_owner(fd: int, name: str) -> None:
    st = os.fstat(fd)
    # A sticky directory (/tmp) is fine: nobody else may rename or remove root's entries in it, and each entry
    # on the way is checked in turn.
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
        stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    )
    if st.st_uid != 0 or writable:
        raise XCheckError(f"{name}: not root-owned or writable by others: the operator could swap it")


def pick_cookie(data: bytes, number: int) -> bytes:
    """Xauthority format: per entry family (u16) and four u16-length-prefixed fields, big endian."""
    fallback = None
    pos = 0
    while pos + 2 <= len(data):
        pos += 2  # family: local and wild both apply to our unix socket
        fields = []
        for _ in range(4):
            (n,) = struct.unpack_from(">H", data, pos)
            fields.append(data[pos + 2 : pos + 2 + n])
            pos += 2 + n
        _addr, num, name, cookie = fields
        if name == COOKIE and num == str(number).encode():
            return cookie
        if name == COOKIE and not num and fallback is None:
            fallback = cookie
    if fallback is None:
        raise XCheckError("the server's auth file holds no MIT-MAGIC-COOKIE-1 for this display")
    return fallback


# -- the protocol, just what we ask ------------------------------------------------------------------


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


class _X11:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise XCheckError("X server closed the connection")
            buf += chunk
        return buf

    def setup(self, cookie: bytes | None) -> int:
        name, data = (COOKIE, cookie) if cookie else (b"", b"")
        msg = struct.pack("<BxHHHHxx", 0x6C, 11, 0, len(name), len(data))
        msg += name + b"\0" * _pad(len(name)) + data + b"\0" * _pad(len(data))
        self.sock.sendall(msg)
        head = self._read(8)
        status, reason_len, _maj, _min, length = struct.unpack("<BBHHH", head)
        body = self._read(length * 4)
        if status != 1:
            why = body[:reason_len].decode(errors="replace") if status == 0 else "more authentication"
            raise XCheckError(f"X server refused the connection: {why.strip()}")
        vendor_len, _max_req, _screens, formats = struct.unpack_from("<HHBB", body, 16)
        offset = 32 + vendor_len + _pad(vendor_len) + 8 * formats
        (root,) = struct.unpack_from("<I", body, offset)
        return int(root)

    def _reply(self) -> bytes:
        while True:
            head = self._read(32)
            if head[0] == 0:
                raise XCheckError(f"X error {head[1]} (request {head[10]})")
            if head[0] == 1:
                (extra,) = struct.unpack_from("<I", head, 4)
                return head + self._read(extra * 4)
            # an event: we select none, but skip any that come

    def grab_keyboard(self, root: int) -> str:
        self.sock.sendall(struct.pack("<BBHIIBBxx", 31, 0, 4, root, 0, 1, 1))
        return _GRAB_STATUS.get(self._reply()[1], "unknown")

    def grab_pointer(self, root: int) -> str:
        self.sock.sendall(struct.pack("<BBHIHBBIII", 26, 0, 6, root, 0, 1, 1, 0, 0, 0))
        return _GRAB_STATUS.get(self._reply()[1], "unknown")

    def screensaver_state(self, root: int) -> str | None:
        name = b"MIT-SCREEN-SAVER"
        req = struct.pack("<BxHHxx", 98, 2 + (len(name) + _pad(len(name))) // 4, len(name))
        self.sock.sendall(req + name + b"\0" * _pad(len(name)))
        reply = self._reply()
        if not reply[8]:
            return None
        self.sock.sendall(struct.pack("<BBHI", reply[9], 1, 2, root))  # ScreenSaverQueryInfo
        return _SAVER_STATE.get(self._reply()[1], "unknown")
