"""Host side of the booth: boot the cached Debian disk (snapshot=on: a throwaway overlay) under QEMU/TCG."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.booth.image import BoothImage
from tests.qemu.qemu import Guest


class Booth(Guest):
    """Same QMP/serial protocol as the kernel-only guest; a real systemd boot from a virtio disk."""

    def __init__(self, image: BoothImage, work: Path, *, net: bool = False) -> None:
        """`net`: a virtio NIC on QEMU's user-mode network (slirp), where 10.0.2.2 is the host's loopback,
        so a collector the test runs on 127.0.0.1 is reachable from the booth with no root networking."""
        self.started = time.monotonic()
        # Without it QEMU's own default NIC is left as it was (test_booth.py boots that way).
        nic = ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"] if net else []
        self._launch(
            work,
            ["-kernel", str(image.kernel), "-initrd", str(image.initrd)],
            "console=ttyS0 panic=-1 loglevel=4 systemd.show_status=0",
            # snapshot=on: the run's writes go to a temp overlay that lives as long as this QEMU process
            # (so they survive system_reset) and never touch the cached image.
            ["-drive", f"file={image.disk},if=virtio,format=raw,snapshot=on", *nic],
        )

    def plug(self, kind: str, dev_id: str) -> None:
        """Adds "phone": QEMU's usb-mtp, an MTP responder (interface 06/01/01, 46f4:0004) serving a small
        read-only folder, as a phone in file-transfer mode shows itself; the rest as the kernel-only guest."""
        if kind != "phone":
            super().plug(kind, dev_id)
            return
        root = self.work / f"{dev_id}-files"
        root.mkdir(exist_ok=True)
        (root / "DCIM.txt").write_text("a phone's files\n")
        self.execute(
            "device_add", driver="usb-mtp", rootdir=str(root), readonly=True, bus="xhci.0", id=dev_id
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for s in (self.qmp, self.ctl):
            s.close()


def why_not() -> str | None:
    """Why this machine cannot boot a booth, or None."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mkfs.ext4 -d of a root-owned tree)"
    for tool in ("qemu-system-x86_64", "debootstrap", "mkfs.ext4", "busybox", "cpio", "modprobe"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (tests/apt-packages.txt)"
    return None


def sh(vm: Booth, script: str, timeout: float = 300) -> dict[str, Any]:
    """A shell script run as root in the booth by its driver: {"rc", "out"}."""
    vm.ctl.sendall(b"SH " + json.dumps({"script": script, "timeout": timeout}).encode() + b"\n")
    result: dict[str, Any] = json.loads(vm.expect("RESULT", timeout + 30))
    return result


def ok(vm: Booth, script: str, timeout: float = 300) -> str:
    r = sh(vm, script, timeout)
    assert r["rc"] == 0, f"{script}: {r}"
    return str(r["out"])


def wait_active(vm: Booth, seconds: int = 60) -> None:
    """Until boothguard.service is active, polled every 0.1 s in the booth."""
    ok(
        vm,
        f"for i in $(seq {seconds * 10}); do systemctl is-active -q boothguard && exit 0; sleep 0.1; done;"
        " exit 1",
        seconds * 1.5,
    )
