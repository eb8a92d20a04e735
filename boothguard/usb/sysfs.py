"""USB sysfs access under a root passed in (``/sys`` in production, a testbed in tests).

Reads and writes sit on the decision path (uevent → `authorized`), so they are plain `os` calls on string
paths: no pathlib joins, no buffered file objects. Writes open the attribute `O_WRONLY` only — sysfs ignores
truncation, and on a plain-file tree (umockdev, tests) `O_TRUNC` costs a filesystem truncate (~150 µs on
ext4) for nothing: the values written ("0", "1", a name) replace what was there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# A USB device's sysfs name is its port path: "<bus>-<port>[.<port>…]"; root hubs are "usb<bus>".
DEVICE_NAME = re.compile(r"^\d+-\d+(\.\d+)*$")
BUS_NAME = re.compile(r"^usb\d+$")
INTERFACE_NAME = re.compile(r"^(\d+-\d+(?:\.\d+)*):\d+\.\d+$")
ATTR_LIMIT = 4096
DESCRIPTORS_LIMIT = 1 << 20
# sysfs hands out binary attributes (`descriptors`) at most a page per read(): a full chunk means read on.
_CHUNK = 4096
_BIG_CHUNK = 1 << 16
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CLOEXEC


class Sysfs:
    def __init__(self, root: Path = Path("/sys")) -> None:
        self.root = root
        self.usb_devices = root / "bus" / "usb" / "devices"
        self._base = f"{self.usb_devices}/"
        self._drivers_probe = f"{root}/bus/usb/drivers_probe"

    def path(self, name: str) -> Path:
        return self.usb_devices / name

    def names(self) -> list[str]:
        try:
            return sorted(p.name for p in self.usb_devices.iterdir())
        except OSError:
            return []

    def buses(self) -> list[str]:
        return [n for n in self.names() if BUS_NAME.match(n)]

    def devices(self) -> list[str]:
        """Non-root-hub devices, parents before children (hubs first)."""
        found = [n for n in self.names() if DEVICE_NAME.match(n)]
        return sorted(found, key=lambda n: (n.count("."), n))

    def interfaces(self, device: str) -> list[str]:
        try:
            return sorted(p.name for p in self.path(device).iterdir() if p.name.startswith(device + ":"))
        except OSError:
            return []

    def read(self, name: str, attr: str, limit: int = ATTR_LIMIT) -> bytes | None:
        """At most `limit` bytes of an attribute; None if it cannot be read (gone, no such attribute)."""
        try:
            fd = os.open(f"{self._base}{name}/{attr}", _READ_FLAGS)
        except OSError:
            return None
        try:
            data = os.read(fd, min(limit, _CHUNK))  # never a `limit`-sized buffer for a few bytes
            if len(data) < _CHUNK or len(data) >= limit:
                return data  # a short read is the end, for sysfs and plain files alike
            chunks, got = [data], len(data)
            while got < limit and (chunk := os.read(fd, min(limit - got, _BIG_CHUNK))):
                chunks.append(chunk)
                got += len(chunk)
            return b"".join(chunks)
        except OSError:
            return None
        finally:
            os.close(fd)

    def read_str(self, name: str, attr: str) -> str | None:
        raw = self.read(name, attr)
        return None if raw is None else raw.decode("ascii", errors="replace").strip()

    def read_int(self, name: str, attr: str) -> int | None:
        text = self.read_str(name, attr)
        try:
            return int(text) if text is not None else None
        except ValueError:
            return None

    def write(self, name: str, attr: str, value: str) -> None:
        """Raises OSError (the device may be gone)."""
        _write(f"{self._base}{name}/{attr}", value.encode())

    def probe(self, interface: str) -> None:
        """Ask the kernel to bind drivers to an interface authorized after it appeared."""
        _write(self._drivers_probe, interface.encode())


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, _WRITE_FLAGS)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def usb_device_of(devpath: str) -> str | None:
    """The nearest USB device in a sysfs path (a block device's parent chain), or None if not on USB."""
    for part in reversed(devpath.strip("/").split("/")):
        if DEVICE_NAME.match(part):
            return part
    return None
