"""A clean Debian 12 root made by debootstrap (minbase + python3 + systemd), cached as a tarball."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

CACHE = Path.home() / ".cache" / "boothguard-tests"
INCLUDE = "python3,systemd"
TARBALL = CACHE / f"debian12-minbase-{INCLUDE.replace(',', '-')}.tar"
MIRROR = "http://deb.debian.org/debian"


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "debootstrap, chroot and dpkg -i need root"
    for tool in ("debootstrap", "dpkg-deb", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (tests/apt-packages.txt)"
    return None


def ensure_tarball() -> Path:
    if TARBALL.exists():
        return TARBALL
    CACHE.mkdir(parents=True, exist_ok=True)
    build = CACHE / "debootstrap.tmp"
    shutil.rmtree(build, ignore_errors=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={INCLUDE}", "bookworm", str(build), MIRROR],
        check=True,
        timeout=900,
        stdout=subprocess.DEVNULL,
    )
    partial = TARBALL.with_suffix(".partial")
    subprocess.run(
        ["tar", "-C", str(build), "--numeric-owner", "-cf", str(partial), "."], check=True, timeout=300
    )
    partial.rename(TARBALL)
    shutil.rmtree(build, ignore_errors=True)
    return TARBALL


@contextlib.contextmanager
def debian_root(where: Path) -> Iterator[Path]:
    """Unpack the cached root and mount /proc into it (its own /dev nodes suffice); unmount after."""
    tarball = ensure_tarball()
    root = where / "debian12"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(tarball)], check=True, timeout=300)
    mounted: list[Path] = []
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True, timeout=30)
        mounted.append(root / "proc")
        yield root
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)
        if not any(os.path.ismount(p) for p in mounted):  # never delete through a live mount
            shutil.rmtree(root, ignore_errors=True)


def chroot(
    root: Path, *argv: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(
        ["chroot", str(root), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc
