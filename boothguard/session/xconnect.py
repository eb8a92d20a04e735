"""The session side's X connections: python-xlib's Display, with the Xauthority entries libX11 would accept.

python-xlib (0.33, Xlib/xauth.py `get_best_auth`) keeps only entries of the connection's own family
(FamilyLocal + hostname on a unix socket) and skips FamilyWild (0xFFFF, any address), which some display
managers and the `xauth nlist | sed s/^..../ffff/ | xauth nmerge` recipe write as the only entry; libX11
(xdpyinfo, xclip) accepts it, python-xlib then connects without a cookie and is refused.

Display() takes no cookie argument: protocol/display.py asks `Xlib.support.connect.get_auth` at each
connect. So that function is wrapped once, and the wrapper adds the libXau lookup only while open_display runs
in the calling thread (a thread-local flag) and only when python-xlib's own lookup found nothing; other users
of python-xlib in the process see no change.

The watcher runs as the operator: reading its own $XAUTHORITY / ~/.Xauthority is what every X client does.
Root-side code (lock/xcheck.py) must not use this: it never reads the operator's file.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib import xauth
from Xlib.support import connect

from boothguard import log

FAMILY_WILD = 0xFFFF
COOKIE = b"MIT-MAGIC-COOKIE-1"

_log = log.get("xconnect")
_scope = threading.local()  # .source: what the wrapper used for the connect under way in this thread
_install_lock = threading.Lock()
_original_get_auth: Any = None


class XConnectError(Exception):
    """The display could not be opened; says why and which cookie (if any) was offered."""

    def __init__(self, display: str, reason: str, cookie_source: str) -> None:
        super().__init__(f"cannot open X display {display}: {reason} (cookie offered: {cookie_source})")
        self.display = display
        self.reason = reason
        self.cookie_source = cookie_source


def xauthority_path(env: Mapping[str, str]) -> Path | None:
    """The file libX11 reads: $XAUTHORITY, else $HOME/.Xauthority."""
    if env.get("XAUTHORITY"):
        return Path(env["XAUTHORITY"])
    if env.get("HOME"):
        return Path(env["HOME"]) / ".Xauthority"
    return None


def pick_cookie(
    entries: list[tuple[int, bytes, bytes, bytes, bytes]], family: int, address: bytes, number: int
) -> tuple[int, bytes] | None:
    """libXau's rule: the first MIT-MAGIC-COOKIE-1 entry whose family is FamilyWild or the connection's own
    (with the same address), for this display number or for any (empty number). Returns (family, cookie)."""
    num = str(number).encode()
    for efam, eaddr, enum, ename, edata in entries:
        if ename != COOKIE or enum not in (b"", num):
            continue
        if efam == FAMILY_WILD or (efam == family and eaddr == address):
            return efam, edata
    return None


def _peer(sock: socket.socket) -> tuple[int, bytes]:
    """The connection's own Xauthority family and address, as python-xlib computes them."""
    if sock.family == socket.AF_INET:
        return xauth.FamilyInternet, bytes(int(x) for x in sock.getpeername()[0].split("."))
    return xauth.FamilyLocal, socket.gethostname().encode()


def _get_auth(sock: socket.socket, dname: str, proto: str | None, host: str, dno: int) -> tuple[bytes, bytes]:
    name, data = _original_get_auth(sock, dname, proto, host, dno)
    if not hasattr(_scope, "source"):
        return name, data  # not one of our connects: python-xlib as it is
    path = xauthority_path(os.environ)
    if name:
        _scope.source = f"{name.decode(errors='replace')} entry from {path} (python-xlib's match)"
        return name, data
    if path is None:
        _scope.source = "none ($XAUTHORITY and $HOME unset)"
        return name, data
    try:
        entries = xauth.Xauthority(str(path)).entries
    except xerror.XauthError as exc:
        _scope.source = f"none ({exc})"
        return name, data
    family, address = _peer(sock)
    found = pick_cookie(entries, family, address, dno)
    if found is None:
        _scope.source = f"none (no {COOKIE.decode()} entry for display {dno} in {path})"
        return name, data
    efam, cookie = found
    _scope.source = f"{COOKIE.decode()} entry of family {efam:#06x} from {path}"
    _log.info("xauth_fallback", display=dname, family=f"{efam:#06x}", path=str(path))
    return COOKIE, cookie


def _install() -> None:
    global _original_get_auth  # noqa: PLW0603 -- installed once per process, under the lock
    with _install_lock:
        if _original_get_auth is None:
            _original_get_auth = connect.get_auth
            connect.get_auth = _get_auth


def open_display(name: str) -> Any:
    """An Xlib.display.Display for `name` (blocking); raises XConnectError when it cannot be opened."""
    _install()
    _scope.source = "none (the connection failed before the cookie was asked)"
    try:
        return xdisplay.Display(name)
    except xerror.DisplayConnectionError as exc:
        msg = exc.msg.decode(errors="replace") if isinstance(exc.msg, bytes) else str(exc.msg)
        raise XConnectError(name, msg.strip(), _scope.source) from exc
    except xerror.DisplayError as exc:
        raise XConnectError(name, str(exc), _scope.source) from exc
    finally:
        del _scope.source
