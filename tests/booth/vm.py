"""Host side of the booth: boot the cached Debian disk (a qcow2 overlay per run) under QEMU/TCG."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.booth.image import BoothImage
from tests.qemu.qemu import Guest, _connect


class Booth(Guest):
    """Same QMP/serial protocol as the kernel-only guest; a real systemd boot from a virtio disk."""

    def __init__(self, image: BoothImage, work: Path) -> None:
        self.work = work
        self.qmp_path = work / "qmp.sock"
        self.ctl_path = work / "ctl.sock"
        self.console = work / "console.log"
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                "qemu-system-x86_64",
                "-M",
                "q35",
                "-accel",
                "tcg",
                "-m",
                "1024",
                "-smp",
                "1",
                "-display",
                "none",
                "-monitor",
                "none",
                "-kernel",
                str(image.kernel),
                "-initrd",
                str(image.initrd),
                "-append",
                "console=ttyS0 panic=-1 loglevel=4 systemd.show_status=0",
                "-drive",
                # snapshot=on: the run's writes go to a temp overlay that lives as long as this QEMU process
                # (so they survive system_reset) and never touch the cached image.
                f"file={image.disk},if=virtio,format=raw,snapshot=on",
                "-device",
                "qemu-xhci,id=xhci",
                "-virtfs",
                f"local,path={work},mount_tag=work,security_model=none",
                "-serial",
                f"file:{self.console}",
                "-serial",
                f"unix:{self.ctl_path},server=on,wait=off",
                "-qmp",
                f"unix:{self.qmp_path},server=on,wait=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        self.qmp = _connect(self.qmp_path, deadline)
        self.qmp_buf = b""
        self._qmp_read()  # greeting
        self.execute("qmp_capabilities")
        self.ctl = _connect(self.ctl_path, deadline)
        self.ctl_buf = b""
        self.drives = 0

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for s in (self.qmp, self.ctl):
            s.close()
