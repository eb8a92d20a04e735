"""Moving a capture file where its owner cannot read it (runs in the agent, as root)."""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from boothguard.errors import BoothguardError

_CHUNK = 1024 * 1024
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class QuarantineError(BoothguardError):
    pass


def _copy(src: int, dst: int) -> int:
    total = 0
    while chunk := os.read(src, _CHUNK):
        view = memoryview(chunk)
        while view:
            n = os.write(dst, view)
            view = view[n:]
        total += len(chunk)
    return total


def quarantine(path: Path, owner_uid: int, qdir: Path, max_bytes: int, now: float) -> tuple[str, int]:
    """Copy `path` into `qdir` (0700) and unlink it; only a regular file `owner_uid` owns, in a directory
    they own, never through a symlink. Returns (name in quarantine, bytes)."""
    if not path.is_absolute():
        raise QuarantineError("path must be absolute")
    try:
        parent = os.stat(path.parent)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise QuarantineError(f"cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise QuarantineError("not a regular file")
        if owner_uid != 0 and (st.st_uid != owner_uid or parent.st_uid != owner_uid):
            raise QuarantineError("file or directory not owned by the requesting user")
        if st.st_size > max_bytes:
            raise QuarantineError(f"file larger than {max_bytes} bytes")
        qdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(qdir, 0o700)
        name = f"{int(now)}-{secrets.token_hex(4)}-{_SAFE.sub('_', path.name)[:100]}"
        dest = qdir / name
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            size = _copy(fd, out)
            os.fsync(out)
        finally:
            os.close(out)
        try:
            now_st = os.lstat(path)
            if (now_st.st_dev, now_st.st_ino) != (st.st_dev, st.st_ino):
                raise QuarantineError("file was replaced while being quarantined")
            os.unlink(path)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        return name, size
    finally:
        os.close(fd)
