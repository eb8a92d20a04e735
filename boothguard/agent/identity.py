"""Who this host is: machine id, name, boot id."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

from boothguard import log
from boothguard.events import HostRef

_log = log.get("identity")


def machine_id(machine_id_file: Path, state_dir: Path) -> str:
    try:
        value = machine_id_file.read_text().strip()
    except OSError:
        value = ""
    if value:
        return value
    # No /etc/machine-id (minimal containers): keep our own, stable across restarts.
    own = state_dir / "machine-id"
    try:
        return own.read_text().strip()
    except OSError:
        value = secrets.token_hex(16)
        own.write_text(value + "\n")
        _log.warning("machine_id_generated", path=str(own))
        return value


def host_ref(machine_id_file: Path, state_dir: Path, host_name: str = "") -> HostRef:
    return HostRef(id=machine_id(machine_id_file, state_dir), name=host_name or socket.gethostname())


def boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
