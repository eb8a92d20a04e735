"""USB sysfs access under a root passed in (``/sys`` in production, a testbed in tests)."""

from __future__ import annotations

import re
from pathlib import Path

# A USB device's sysfs name is its port path: "<bus>-<port>[.<port>…]"; root hubs are "usb<bus>".
DEVICE_NAME = re.compile(r"^\d+-\d+(\.\d+)*$")
BUS_NAME = re.compile(r"^usb\d+$")
INTERFACE_NAME = re.compile(r"^(\d+-\d+(?:\.\d+)*):\d+\.\d+$")
ATTR_LIMIT = 4096
DESCRIPTORS_LIMIT = 1 << 20


class Sysfs:
    def __init__(self, root: Path = Path("/sys")) -> None:
        self.root = root
        self.usb_devices = root / "bus" / "usb" / "devices"

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
        try:
            with open(self.path(name) / attr, "rb", buffering=0) as f:
                return f.read(limit)
        except OSError:
            return None

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
        with open(self.path(name) / attr, "wb", buffering=0) as f:
            f.write(value.encode())

    def probe(self, interface: str) -> None:
        """Ask the kernel to bind drivers to an interface authorized after it appeared."""
        with open(self.root / "bus" / "usb" / "drivers_probe", "wb", buffering=0) as f:
            f.write(interface.encode())


def usb_device_of(devpath: str) -> str | None:
    """The nearest USB device in a sysfs path (a block device's parent chain), or None if not on USB."""
    for part in reversed(devpath.strip("/").split("/")):
        if DEVICE_NAME.match(part):
            return part
    return None
