"""Runs inside the QEMU guest (chrooted into the host's root): the agent from this checkout, an independent
raw-netlink uevent oracle, and a lock-step protocol with the host harness over /dev/ttyS1.

Host → guest lines: "CHECK <what>" after hot-plugging, "PHASE <name>", "DONE". Guest → host: "READY",
"RESULT <json>", "BYE". Standard library only, except the agent itself (a subprocess).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path
from typing import Any

NETLINK_KOBJECT_UEVENT = 15
USB = Path("/sys/bus/usb/devices")
IDS = {"kbd": ("0627", "0001"), "audio": ("46f4", "0002"), "stick": ("46f4", "0001")}


class Oracle(threading.Thread):
    """Every kernel uevent, timestamped, from its own netlink socket: independent of the agent."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((0, 1))
        self.seen: list[dict[str, Any]] = []

    def run(self) -> None:
        while True:
            data = self.sock.recv(65536)
            fields = dict(p.split("=", 1) for p in data.decode(errors="replace").split("\0")[1:] if "=" in p)
            fields["t"] = time.monotonic()
            self.seen.append(fields)

    def block_adds(self, since: float = 0.0) -> list[str]:
        return [
            e.get("DEVNAME", "?")
            for e in list(self.seen)
            if e["t"] >= since
            and e.get("SUBSYSTEM") == "block"
            and e.get("ACTION") == "add"
            and e.get("DEVNAME", "").startswith("sd")
        ]


class Agent:
    def __init__(self, name: str, usb: str) -> None:
        self.dir = Path("/tmp") / name
        self.dir.mkdir()
        self.config = self.dir / "agent.toml"
        self.config.write_text(
            f'[agent]\nstate_dir = "{self.dir}/state"\nruntime_dir = "{self.dir}/run"\nhost_name = "guest"\n'
            f'[ship]\ncollector_url = ""\n[usb]\nmode = "enforce"\nuevent_source = "kernel"\n{usb}\n'
        )
        self.config.chmod(0o644)
        self.log = open(self.dir / "agent.log", "w+")  # noqa: SIM115 - lives as long as the agent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "boothguard", "agent", "--config", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while "agent_ready" not in (self.dir / "agent.log").read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("agent did not start:\n" + (self.dir / "agent.log").read_text()[-3000:])
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)

    def events(self) -> list[dict[str, Any]]:
        con = sqlite3.connect(f"file:{self.dir}/state/spool.db?mode=ro", uri=True, timeout=5)
        try:
            return [json.loads(r[0]) for r in con.execute("SELECT body FROM events ORDER BY seq")]
        finally:
            con.close()


def attr(path: Path, name: str) -> str | None:
    try:
        return (path / name).read_text().strip()
    except OSError:
        return None


def wait_device(kind: str, known: set[str], timeout: float = 20) -> str:
    vid, pid = IDS[kind]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in USB.iterdir():
            if ":" in p.name or p.name.startswith("usb") or p.name in known:
                continue
            if attr(p, "idVendor") == vid and attr(p, "idProduct") == pid:
                known.add(p.name)
                return p.name
        time.sleep(0.02)
    raise RuntimeError(f"no {kind} device appeared")


def interfaces(name: str) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted((USB / name).glob(f"{name}:*")):
        driver = p / "driver"
        out[p.name] = {
            "authorized": attr(p, "authorized"),
            "class": attr(p, "bInterfaceClass"),
            "driver": os.path.basename(os.readlink(driver)) if driver.exists() else None,
        }
    return out


def wait_until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def check(kind: str, oracle: Oracle, known: set[str], agent: Agent | None, since: float) -> dict[str, Any]:
    name = wait_device(kind, known)
    dev = USB / name
    if kind == "kbd":
        # Generous: TCG emulation on a loaded 2-core machine is slow; the wait ends as soon as it binds.
        wait_until(lambda: any(i["driver"] == "usbhid" for i in interfaces(name).values()), 30)
    elif kind == "audio":
        wait_until(lambda: attr(dev, "authorized") == "1" and len(interfaces(name)) >= 2, 30)
        time.sleep(1.0)
    else:
        # Long enough for usb-storage (delay_use=0) and sd to bind, had anything authorized the stick.
        wait_until(lambda: bool(oracle.block_adds(since)), 3.0)
    result: dict[str, Any] = {
        "kind": kind,
        "port": name,
        "authorized": attr(dev, "authorized"),
        "interfaces": interfaces(name),
        "block_adds": oracle.block_adds(since),
        "dev_sd": sorted(p.name for p in Path("/dev").glob("sd*")),
    }
    if agent is not None:
        wait_until(
            lambda: any(
                e["data"].get("port") == name and e["type"].startswith("usb.device.") for e in agent.events()
            ),
            10,
        )
        result["events"] = [
            {
                "type": e["type"],
                "rule": e["data"].get("rule"),
                "verdict": e["data"].get("verdict"),
                "interface": e["data"].get("interface"),
            }
            for e in agent.events()
            if e["data"].get("port") == name
        ]
    return result


def reactive(delay: float, stop: threading.Event) -> None:
    """The losing design: buses open, revoke storage after the fact."""
    for bus in USB.glob("usb*"):
        (bus / "authorized_default").write_text("1")
        (bus / "interface_authorized_default").write_text("1")
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
    sock.bind((0, 1))
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        fields = dict(p.split("=", 1) for p in data.decode(errors="replace").split("\0")[1:] if "=" in p)
        if (
            fields.get("ACTION") == "add"
            and fields.get("DEVTYPE") == "usb_interface"
            and fields.get("INTERFACE", "").startswith("8/")
        ):
            time.sleep(delay)
            dev = Path("/sys") / fields["DEVPATH"].lstrip("/")
            (dev.parent / "authorized").write_text("0")


def main(work: Path) -> int:
    ctl = open("/dev/ttyS1", "r+b", buffering=0)  # noqa: SIM115 - the control channel for the whole run
    tty.setraw(ctl.fileno())
    reader = ctl

    def send(line: str) -> None:
        ctl.write(line.encode() + b"\n")

    oracle = Oracle()
    oracle.start()
    known: set[str] = set()
    agent: Agent | None = Agent("a", "")
    stop_reactive = threading.Event()
    send("READY")
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = reader.read(1)
            if not chunk:
                return 1
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        cmd = line.decode().strip().split()
        if not cmd:
            continue
        since = time.monotonic()
        if cmd[0] == "CHECK":
            try:
                send("RESULT " + json.dumps(check(cmd[1], oracle, known, agent, since)))
            except Exception as exc:
                send("RESULT " + json.dumps({"kind": cmd[1], "error": repr(exc)}))
        elif cmd[0] == "PHASE":
            if agent is not None:
                agent.stop()
                agent = None
            if cmd[1] == "per_interface":
                rule = (
                    '[[usb.rules]]\nid = "no-audio-streaming"\naction = "block"\ninterfaces_any = ["01:02"]\n'
                )
                agent = Agent("b", rule)
            elif cmd[1] == "reactive":
                threading.Thread(target=reactive, args=(0.2, stop_reactive), daemon=True).start()
                time.sleep(0.5)
            send("RESULT " + json.dumps({"phase": cmd[1]}))
        elif cmd[0] == "DONE":
            stop_reactive.set()
            if agent is not None:
                agent.stop()
            (work / "oracle.json").write_text(json.dumps(oracle.seen))
            send("BYE")
            return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
