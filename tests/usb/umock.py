"""umockdev harness: a mocked sysfs tree whose uevents reach the agent's pyudev monitor for real.

The pytest process must run under `umockdev-wrapper` (tests/run.sh does this for the `umockdev` marker).
Devices are built by hand so the binary `descriptors` exists *before* the add uevent (Testbed.add_device
emits it at once); the kernel's side effects (interfaces appearing once a device is authorized) are played
by the test. The agent runs as a real `python -m boothguard agent` subprocess with the preload library.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from tests.usb import descbuild as d  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def under_wrapper() -> bool:
    return "umockdev" in os.environ.get("LD_PRELOAD", "")


class Bed:
    def __init__(self) -> None:
        self.tb = UMockdev.Testbed.new()
        self.root = Path(self.tb.get_root_dir())
        self.sys = Path(self.tb.get_sys_dir())
        (self.sys / "bus" / "usb" / "devices").mkdir(parents=True, exist_ok=True)
        (self.sys / "bus" / "usb" / "drivers_probe").write_bytes(b"")
        self.devnum = 1

    def real(self, syspath: str) -> Path:
        return self.root / syspath.lstrip("/")

    def add_bus(self, n: int = 1) -> str:
        attrs = ["authorized_default", "1", "interface_authorized_default", "1", "busnum", str(n)]
        path: str = self.tb.add_device("usb", f"usb{n}", None, attrs, ["DEVTYPE", "usb_device"])
        return path

    def _node(self, syspath: str, attrs: dict[str, bytes], devtype: str) -> None:
        real = self.real(syspath)
        real.mkdir()
        for key, value in attrs.items():
            (real / key).write_bytes(value)
        (real / "uevent").write_text(f"DEVTYPE={devtype}\n")
        (real / "subsystem").symlink_to(os.path.relpath(self.sys / "bus" / "usb", real))
        link = self.sys / "bus" / "usb" / "devices" / real.name
        link.symlink_to(os.path.relpath(real, link.parent))

    def plug(
        self,
        parent: str,
        port: str,
        vid: int,
        pid: int,
        classes: list[d.Iface],
        *,
        product: bytes = b"Test Device",
        manufacturer: bytes = b"ACME",
        serial: bytes | None = b"0001",
        raw: bytes | None = None,
        authorized: bytes = b"0",
        emit: bool = True,
    ) -> str:
        """A device appears (unauthorized, as on a locked bus) with its add uevent (unless emit=False)."""
        syspath = f"{parent}/{port}"
        self.devnum += 1
        attrs = {
            "descriptors": raw if raw is not None else d.descriptors(vid, pid, classes),
            "idVendor": f"{vid:04x}\n".encode(),
            "idProduct": f"{pid:04x}\n".encode(),
            "busnum": port.split("-", maxsplit=1)[0].encode() + b"\n",
            "devnum": f"{self.devnum}\n".encode(),
            "authorized": authorized + b"\n",
            "product": product + b"\n",
            "manufacturer": manufacturer + b"\n",
        }
        if serial is not None:
            attrs["serial"] = serial + b"\n"
        self._node(syspath, attrs, "usb_device")
        if emit:
            self.tb.uevent(syspath, "add")
        return syspath

    def kernel_configures(
        self,
        syspath: str,
        classes: list[d.Iface],
        labels: dict[int, bytes] | None = None,
        authorized: bytes = b"0",
    ) -> list[str]:
        """What the kernel does after `authorized=1`: the interfaces appear (unauthorized while
        interface_authorized_default=0), each with its add uevent."""
        port = syspath.rsplit("/", 1)[1]
        names = []
        for n, (cls, sub, proto) in enumerate(classes):
            name = f"{port}:1.{n}"
            attrs = {
                "bInterfaceNumber": f"{n:02x}\n".encode(),
                "bInterfaceClass": f"{cls:02x}\n".encode(),
                "bInterfaceSubClass": f"{sub:02x}\n".encode(),
                "bInterfaceProtocol": f"{proto:02x}\n".encode(),
                "authorized": authorized + b"\n",
            }
            if labels and n in labels:
                attrs["interface"] = labels[n] + b"\n"
            self._node(f"{syspath}/{name}", attrs, "usb_interface")
            self.tb.uevent(f"{syspath}/{name}", "add")
            names.append(name)
        return names

    def unplug(self, syspath: str) -> None:
        self.tb.uevent(syspath, "remove")
        self.tb.remove_device(syspath)

    def attr(self, syspath: str, name: str) -> str:
        return (self.real(syspath) / name).read_bytes().decode(errors="replace").strip()


class Agent:
    """`python -m boothguard agent` as a subprocess on the testbed; events read from its spool."""

    def __init__(self, bed: Bed, tmp: Path, usb: str = "") -> None:
        self.bed = bed
        self.tmp = tmp
        self.state = tmp / "state"
        self.config = tmp / "agent.toml"
        self.config.write_text(
            f'[agent]\nstate_dir = "{self.state}"\nruntime_dir = "{tmp / "run"}"\nhost_name = "booth-1"\n'
            f'heartbeat_seconds = 3600\n[ship]\ncollector_url = ""\n[usb]\nuevent_source = "udev"\n{usb}\n'
        )
        self.config.chmod(0o644)
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["UMOCKDEV_DIR"] = str(self.bed.root)
        env["PYTHONPATH"] = str(REPO)
        return env

    def start(self, timeout: float = 30) -> None:
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "boothguard", "agent", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env(),
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        self.wait_log("agent_ready", timeout)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_log(self, name: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.logs():
                if entry.get("event") == name:
                    return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n" + "\n".join(self.lines[-40:]))
            time.sleep(0.02)
        raise AssertionError(f"no {name} log within {timeout}s:\n" + "\n".join(self.lines[-40:]))

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise

    def events(self) -> list[dict[str, Any]]:
        db = self.state / "spool.db"
        if not db.exists():
            return []
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("SELECT body FROM events ORDER BY seq").fetchall()
        finally:
            con.close()
        return [json.loads(r[0]) for r in rows]

    def wait_event(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events():
                if pred(ev):
                    return ev
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n" + "\n".join(self.lines[-40:]))
            time.sleep(0.02)
        types = [(e["type"], e["data"].get("port")) for e in self.events()]
        raise AssertionError(
            f"no matching event within {timeout}s; have {types}\n" + "\n".join(self.lines[-20:])
        )

    def usb_event(self, type_: str, port: str, timeout: float = 10) -> dict[str, Any]:
        return self.wait_event(lambda e: e["type"] == type_ and e["data"].get("port") == port, timeout)[
            "data"
        ]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "boothguard", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=60,
            check=False,
        )


def wait_for(check: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
