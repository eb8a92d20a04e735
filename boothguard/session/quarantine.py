"""Copying a capture file into the quarantine from a file descriptor the operator handed over (root side).

Root never resolves a path the operator controls: the watcher (running as the operator) opens the file and
passes the fd; here it is only `fstat`ed and read. What the fd points at was decided by the operator's own
permissions when they opened it, so a swapped directory or symlink cannot steer root anywhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from boothguard.errors import BoothguardError

_CHUNK = 1024 * 1024
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
# Pseudo filesystems whose "regular files" are kernel views (a user's /proc/self/environ is theirs).
_PSEUDO_ROOTS = ("/proc", "/sys")


class QuarantineError(BoothguardError):
    pass


def _pseudo_devs() -> set[int]:
    devs = set()
    for root in _PSEUDO_ROOTS:
        with contextlib.suppress(OSError):
            devs.add(os.stat(root).st_dev)
    return devs


def check_fd(fd: int, owner_uid: int, max_bytes: int) -> os.stat_result:
    """The fd must be a non-empty regular file `owner_uid` owns, at most `max_bytes`, on a real filesystem."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise QuarantineError("not a regular file")
    if st.st_dev in _pseudo_devs():
        raise QuarantineError("file on a pseudo filesystem")
    if owner_uid not in (0, st.st_uid):
        raise QuarantineError("file not owned by the requesting user")
    if st.st_size > max_bytes:
        raise QuarantineError(f"file larger than {max_bytes} bytes")
    if st.st_size == 0:
        raise QuarantineError("empty file")
    return st


def _copy(src: int, dst: int, limit: int) -> int:
    total = 0
    while chunk := os.pread(src, min(_CHUNK, limit + 1 - total), total):
        total += len(chunk)
        if total > limit:  # grew after the fstat: the cap holds for what is read, not what was said
            raise QuarantineError(f"file larger than {limit} bytes")
        view = memoryview(chunk)
        while view:
            n = os.write(dst, view)
            view = view[n:]
    return total


def quarantine_fd(
    fd: int, owner_uid: int, label: str, *, qdir: Path, max_bytes: int, now: float
) -> tuple[str, int]:
    """Copy the file behind `fd` into `qdir` (0700). `label` only names the copy. Returns (name, bytes).
    The caller keeps and closes `fd`; the operator's side unlinks the original."""
    check_fd(fd, owner_uid, max_bytes)
    qdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(qdir, 0o700)
    name = f"{int(now)}-{secrets.token_hex(4)}-{_SAFE.sub('_', label)[:100] or 'capture'}"
    dest = qdir / name
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        size = _copy(fd, out, max_bytes)
        os.fsync(out)
    except BaseException:
        os.close(out)
        dest.unlink(missing_ok=True)
        raise
    os.close(out)
    return name, size
