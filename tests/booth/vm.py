"""Host side of the booth: boot the cached Debian disk (snapshot=on: a throwaway overlay) under QEMU/TCG."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

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

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for s in (self.qmp, self.ctl):
            s.close()
