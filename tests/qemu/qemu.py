"""Host side of the QEMU USB test: boot the guest, hot-plug over QMP, talk to the guest on its ttyS1."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.qemu.image import Image


def _connect(path: Path, deadline: float) -> socket.socket:
    while True:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(path))
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Guest:
    def __init__(self, image: Image, work: Path) -> None:
        self._launch(
            work,
            ["-no-reboot", "-kernel", str(image.kernel), "-initrd", str(image.initrd)],
            "console=ttyS0 panic=-1 loglevel=4",
            ["-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on"],
        )

    def _launch(self, work: Path, boot: list[str], cmdline: str, extra: list[str]) -> None:
        """Start QEMU/TCG with xhci, the work dir over 9p, ttyS0 to a file, ttyS1 and QMP on sockets."""
        self.work = work
        self.qmp_path = work / "qmp.sock"
        self.ctl_path = work / "ctl.sock"
        self.console = work / "console.log"
        self.proc = subprocess.Popen(
            [
                "qemu-system-x86_64",
                *("-M", "q35", "-accel", "tcg", "-m", "1024", "-smp", "1"),
                *("-display", "none", "-monitor", "none"),
                *boot,
                *("-append", cmdline, "-device", "qemu-xhci,id=xhci"),
                *extra,
                *("-virtfs", f"local,path={work},mount_tag=work,security_model=none"),
                *("-serial", f"file:{self.console}", "-serial", f"unix:{self.ctl_path},server=on,wait=off"),
                *("-qmp", f"unix:{self.qmp_path},server=on,wait=off"),
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

    def _qmp_read(self) -> dict[str, Any]:
        while b"\n" not in self.qmp_buf:
            chunk = self.qmp.recv(65536)
            if not chunk:
                raise RuntimeError("QMP closed")
            self.qmp_buf += chunk
        line, self.qmp_buf = self.qmp_buf.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def execute(self, command: str, **arguments: Any) -> Any:
        self.qmp.settimeout(30)
        self.qmp.sendall(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
        while True:
            reply = self._qmp_read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error']}")

    def plug(self, kind: str, dev_id: str) -> None:
        if kind == "stick":
            self.drives += 1
            img = self.work / f"{dev_id}.img"
            with open(img, "wb") as f:
                f.truncate(8 << 20)
            self.execute(
                "blockdev-add",
                **{
                    "node-name": dev_id + "-d",
                    "driver": "raw",
                    "file": {"driver": "file", "filename": str(img)},
                },
            )
            self.execute("device_add", driver="usb-storage", drive=dev_id + "-d", bus="xhci.0", id=dev_id)
        else:
            driver = {"kbd": "usb-kbd", "audio": "usb-audio"}[kind]
            self.execute("device_add", driver=driver, bus="xhci.0", id=dev_id)

    def readline(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.ctl_buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                raise TimeoutError("guest silent; console tail:\n" + self.console_tail())
            self.ctl.settimeout(remaining)
            try:
                chunk = self.ctl.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise RuntimeError("guest control channel closed:\n" + self.console_tail())
            self.ctl_buf += chunk
        line, self.ctl_buf = self.ctl_buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.1, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def request(self, line: str, timeout: float = 60) -> dict[str, Any]:
        self.ctl.sendall(line.encode() + b"\n")
        result: dict[str, Any] = json.loads(self.expect("RESULT", timeout))
        return result

    def console_tail(self) -> str:
        try:
            return self.console.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for s in (self.qmp, self.ctl):
            s.close()
