"""The small files beside the spool database: the seq reservation and the disk-space ballast."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Reservation:
    reserved: int  # every seq ever handed out is ≤ this
    acked: int  # every seq ≤ this was acknowledged (a conservative, lazily written mark)


class SeqSidecar:
    """`spool.db.seq`: written (fsync, atomic rename) before a seq block is used, so a lost spool file
    can never make seq go back."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Reservation:
        try:
            raw = json.loads(self.path.read_text())
            return Reservation(int(raw["reserved"]), int(raw.get("acked", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return Reservation(0, 0)

    def write(self, reservation: Reservation) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps({"reserved": reservation.reserved, "acked": reservation.acked}))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        dirfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


class Ballast:
    """A preallocated file deleted on ENOSPC, to survive long enough to report it; re-created later."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size

    def ensure(self) -> bool:
        """True when the ballast is in place (or disabled)."""
        if self.size <= 0 or self.path.exists():
            return True
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError:
            with contextlib.suppress(OSError):
                self.path.unlink()
            return False
        return True

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def move_aside(path: Path, stamp: str) -> Path:
    """Rename a damaged database (and its WAL/SHM) out of the way, keeping it for inspection."""
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            src.rename(Path(str(target) + suffix))
    return target
