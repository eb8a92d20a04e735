"""The booth's disk: a Debian 12 root made by debootstrap, cached as a raw ext4 image, booted under QEMU.

Cached under BOOTHGUARD_TEST_CACHE/booth, keyed on the package list, the image recipe and the kernel, so it
rebuilds when any of them changes and survives changes to the project's code (the .deb is installed by the
guest at test time). The kernel is the Debian one tests/qemu already caches; its modules are copied into the
root so the booth's own udev loads usb-storage, usbhid, snd-usb-audio as a real booth would.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.qemu import image as qimage

VERSION = "booth-image-1"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "libpam-systemd",
    "python3",
    "passwd",
    "init-system-helpers",
    "xvfb",
    "xss-lock",
    "i3lock",
    "kmod",
    "iproute2",
    "procps",
    "util-linux",
]
INITRD_MODULES = ["virtio_pci", "virtio_blk", "ext4"]
SIZE = 3 << 30

# Started by the booth's systemd after multi-user.target: mounts the host's work dir (9p) and runs the test
# driver from it, so the cached image never holds test code.
DRIVER_UNIT = """[Unit]
Description=booth test driver (host share over 9p)
After=multi-user.target

[Service]
Type=simple
ExecStart=/bin/sh -c 'modprobe 9pnet_virtio; modprobe 9p; mkdir -p /mnt/work; \\
  mount -t 9p -o trans=virtio,version=9p2000.L work /mnt/work && exec python3 /mnt/work/driver.py /mnt/work'
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
"""

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo BOOTH-NO-ROOT; poweroff -f; }
umount /proc /sys; mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
"""


@dataclass(frozen=True)
class BoothImage:
    disk: Path
    kernel: Path
    initrd: Path
    build_seconds: float  # 0 when it came from the cache


def _run(argv: list[str], timeout: float = 900) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout).stdout


def _kernel() -> tuple[str, Path]:
    pkg = qimage.kernel_package()
    kver = pkg.removeprefix("linux-image-")
    kroot = qimage.CACHE / kver / "root"
    if not (kroot / "boot" / f"vmlinuz-{kver}").exists():
        # tests/qemu's builder fetches and unpacks it; the initramfs it makes is not used here.
        qimage.build(Path("/nonexistent"), Path("/usr/bin/python3"))
    return kver, kroot


def build() -> BoothImage:
    kver, kroot = _kernel()
    key = hashlib.sha256("\0".join([VERSION, kver, *PACKAGES, DRIVER_UNIT]).encode()).hexdigest()[:12]
    ikey = hashlib.sha256("\0".join([kver, INIT, *INITRD_MODULES]).encode()).hexdigest()[:12]
    cache = qimage.CACHE.parent / "booth"
    cache.mkdir(parents=True, exist_ok=True)
    disk = cache / f"debian12-booth-{key}.img"
    initrd = cache / f"initrd-{ikey}.cpio.gz"
    started = time.monotonic()
    built = False
    if not disk.exists():
        _disk(kver, kroot, disk)
        built = True
    if not initrd.exists():
        _initramfs(kver, kroot, initrd)
    return BoothImage(
        disk, kroot / "boot" / f"vmlinuz-{kver}", initrd, time.monotonic() - started if built else 0.0
    )


def _chroot(root: Path, *argv: str) -> None:
    _run(["chroot", str(root), *argv], timeout=300)


def _disk(kver: str, kroot: Path, disk: Path) -> None:
    build_dir = disk.with_suffix(".d")
    done = build_dir / ".booth-bootstrapped"
    if not done.exists():  # an interrupted build resumes after debootstrap when that part finished
        shutil.rmtree(build_dir, ignore_errors=True)
        _debootstrap(build_dir)
        done.touch()
    shutil.copytree(
        kroot / "lib" / "modules" / kver,
        build_dir / "lib" / "modules" / kver,
        symlinks=True,
        dirs_exist_ok=True,
    )
    (build_dir / "etc" / "fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (build_dir / "etc" / "hostname").write_text("booth\n")
    (build_dir / "etc" / "systemd" / "system" / "booth-driver.service").write_text(DRIVER_UNIT)
    _chroot(build_dir, "systemctl", "enable", "booth-driver.service")
    # Nothing in the booth needs them, and on TCG every unit costs boot time.
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer"):
        _chroot(build_dir, "systemctl", "mask", unit)
    # The test operator (Debian already has an "operator" group, hence the name).
    _chroot(build_dir, "sh", "-c", "id -u agent1 || useradd -m -u 1000 -s /bin/bash agent1")
    shutil.rmtree(build_dir / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    (build_dir / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True)
    partial = disk.with_suffix(".partial")
    with open(partial, "wb") as f:
        f.truncate(SIZE)
    done.unlink()
    _run(["mkfs.ext4", "-q", "-F", "-L", "booth", "-d", str(build_dir), str(partial)], timeout=600)
    partial.rename(disk)
    shutil.rmtree(build_dir, ignore_errors=True)


def _debootstrap(build_dir: Path) -> None:
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            "bookworm",
            str(build_dir),
            MIRROR,
        ],
        timeout=1500,
    )


def _initramfs(kver: str, kroot: Path, out: Path) -> None:
    qimage.build_initramfs(kroot, kver, INITRD_MODULES, INIT, out)
