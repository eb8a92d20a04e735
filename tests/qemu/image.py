"""Build (and cache) what the QEMU USB test boots: a Debian kernel and a busybox initramfs.

The kernel comes from the Debian archive with `apt-get download` (no install) and `dpkg -x`; the initramfs
holds static busybox and the USB/9p modules. The guest mounts the host's root read-only over virtio-9p and
chroots into it, so it runs this checkout's own venv and code.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("BOOTHGUARD_TEST_CACHE", Path.home() / ".cache" / "boothguard-tests")) / "qemu"
MODULES = [
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "xhci_pci",
    "ehci_pci",
    "usb_storage",
    "uas",
    "sd_mod",
    "usbhid",
    "hid_generic",
    "evdev",
    "snd_usb_audio",
]

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /host /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m || echo "insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /host
mount -o bind /proc /host/proc
mount -o bind /sys /host/sys
mount -o bind /dev /host/dev
mount -t tmpfs tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
mount -t 9p -o trans=virtio,version=9p2000.L work /host/mnt
echo 0 > /sys/module/usb_storage/parameters/delay_use
echo GUEST-INIT-DONE
chroot /host /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1 \\
    /bin/sh -c "cd '@REPO@' && exec '@PYTHON@' tests/qemu/guest.py /mnt"
echo "GUEST-EXIT $?"
poweroff -f
"""


@dataclass(frozen=True)
class Image:
    kernel: Path
    initrd: Path


def _run(argv: list[str], cwd: Path | None = None) -> str:
    return subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True, timeout=600).stdout


def kernel_package() -> str:
    """The versioned package behind linux-image-amd64 (e.g. linux-image-6.1.0-56-amd64)."""
    for raw in _run(["apt-cache", "depends", "linux-image-amd64"]).splitlines():
        line = raw.strip()
        if line.startswith("Depends: linux-image-"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError("apt-cache knows no linux-image-amd64 dependency")


def build(repo: Path, python: Path) -> Image:
    CACHE.mkdir(parents=True, exist_ok=True)
    pkg = kernel_package()
    kver = pkg.removeprefix("linux-image-")
    kdir = CACHE / kver
    kroot = kdir / "root"
    if not (kroot / "boot" / f"vmlinuz-{kver}").exists():
        shutil.rmtree(kdir, ignore_errors=True)
        kdir.mkdir(parents=True)
        _run(["apt-get", "download", pkg], cwd=kdir)
        (deb,) = kdir.glob("*.deb")
        _run(["dpkg", "-x", str(deb), str(kroot)])
        _run(["depmod", "-b", str(kroot), kver])
        deb.unlink()
    initrd = kdir / f"initrd-{_key(repo, python)}.cpio.gz"
    if not initrd.exists():
        _initramfs(kroot, kver, repo, python, initrd)
    return Image(kroot / "boot" / f"vmlinuz-{kver}", initrd)


def _key(repo: Path, python: Path) -> str:
    import hashlib

    return hashlib.sha256(f"{repo}\0{python}\0{INIT}".encode()).hexdigest()[:12]


def _initramfs(kroot: Path, kver: str, repo: Path, python: Path, out: Path) -> None:
    build_initramfs(
        kroot, kver, MODULES, INIT.replace("@REPO@", str(repo)).replace("@PYTHON@", str(python)), out
    )


def build_initramfs(kroot: Path, kver: str, modules: Sequence[str], init: str, out: Path) -> None:
    """A gzipped cpio with static busybox, `modules` and their dependencies (load order in modules/order)
    and `init`; written atomically to `out`. The booth's initrd is built the same way."""
    stage = out.with_suffix(".d")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "bin").mkdir(parents=True)
    (stage / "modules").mkdir()
    shutil.copy("/bin/busybox", stage / "bin" / "busybox")
    order: list[str] = []
    for module in modules:
        deps = _run(["modprobe", "-d", str(kroot), "-S", kver, "--show-depends", module])
        for line in deps.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod":
                name = Path(parts[1]).name
                if name not in order:
                    shutil.copy(parts[1], stage / "modules" / name)
                    order.append(name)
    (stage / "modules" / "order").write_text("\n".join(order) + "\n")
    (stage / "init").write_text(init)
    (stage / "init").chmod(0o755)
    files = subprocess.run(["find", "."], cwd=stage, check=True, capture_output=True).stdout
    cpio = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"], cwd=stage, input=files, check=True, capture_output=True
    ).stdout
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(cpio, compresslevel=1))
    tmp.rename(out)
    shutil.rmtree(stage)
