"""A minimal Wayland client: list the compositor's globals (wl_registry) to see which protocols it offers.

Shared by the watcher's capability probe and `boothguard doctor`, so both judge a compositor alike.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path

_DISPLAY, _REGISTRY, _CALLBACK = 1, 2, 3
MAX_BYTES = 1 << 20
# The protocols `wl-paste --watch` can watch the clipboard through, preferred first.
DATA_CONTROL = ("ext_data_control_manager_v1", "zwlr_data_control_manager_v1")


def socket_path(env: Mapping[str, str]) -> Path | None:
    """The compositor's socket as libwayland finds it: WAYLAND_DISPLAY, absolute or in XDG_RUNTIME_DIR."""
    name = env.get("WAYLAND_DISPLAY")
    if not name:
        return None
    if name.startswith("/"):
        return Path(name)
    runtime = env.get("XDG_RUNTIME_DIR")
    return Path(runtime) / name if runtime else None


def data_control(found: Mapping[str, int]) -> str | None:
    """The data-control protocol the compositor offers, if any."""
    return next((p for p in DATA_CONTROL if p in found), None)


def _message(obj: int, opcode: int, *words: int) -> bytes:
    size = 8 + 4 * len(words)
    return struct.pack(f"<II{len(words)}I", obj, (size << 16) | opcode, *words)


def _string(payload: bytes, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<I", payload, offset)
    raw = payload[offset + 4 : offset + 4 + length]
    return raw.rstrip(b"\0").decode("utf-8", errors="replace"), offset + 4 + ((length + 3) & ~3)


def globals_of(path: Path, timeout: float) -> dict[str, int]:
    """Interface name → version of every global the compositor at `path` announces."""
    found: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(_message(_DISPLAY, 1, _REGISTRY) + _message(_DISPLAY, 0, _CALLBACK))
        buf = b""
        while time.monotonic() < deadline and len(buf) < MAX_BYTES:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("compositor closed the connection")
            buf += chunk
            while len(buf) >= 8:
                obj, word = struct.unpack_from("<II", buf)
                size, opcode = word >> 16, word & 0xFFFF
                if size < 8:
                    raise ValueError("malformed Wayland message")
                if len(buf) < size:
                    break
                payload, buf = buf[8:size], buf[size:]
                if obj == _REGISTRY and opcode == 0:
                    interface, offset = _string(payload, 4)
                    (version,) = struct.unpack_from("<I", payload, offset)
                    found[interface] = version
                elif obj == _CALLBACK and opcode == 0:
                    return found
                elif obj == _DISPLAY and opcode == 0:
                    message, _ = _string(payload, 8)
                    raise ConnectionError(f"compositor error: {message}")
        raise TimeoutError("no answer to wl_display.sync")
