"""VPN watching with a real (tun) network interface brought up and down with `ip`."""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lock.conftest import Harness
from tests.lock.mocklogind import MockLogind


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


class Tun:
    """A tun interface held open by this process, as a VPN client holds it: closing it removes it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fd: int | None = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@pytest.fixture
def tun() -> Iterator[Tun]:
    if shutil.which("ip") is None or os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        pytest.skip("needs root, iproute2 and /dev/net/tun to create a tun interface")
    try:
        dev = Tun(f"bgvpn{os.getpid() % 100000}")
    except OSError as exc:
        pytest.skip(f"cannot create a tun interface here: {exc}")
    try:
        yield dev
    finally:
        dev.close()


async def test_vpn_down_locks_and_vpn_up_is_reported(logind: MockLogind, make_harness: Any, tun: Tun) -> None:
    logind.add_session("c1")
    h: Harness = await make_harness(vpn_interfaces=["bgvpn*", "wg-corp*"], vpn_poll_seconds=0.05)
    assert h.lock.status()["vpn"]["state"] == "unknown"  # never up yet: not "down"
    assert h.of_type("network.vpn_down") == []
    name = tun.name
    assert ip("link", "set", "dev", name, "up").returncode == 0
    up = await h.wait_event("network.vpn_up")
    assert up.data["interfaces"] == [name]
    assert h.of_type("away.started") == []
    assert ip("link", "set", "dev", name, "down").returncode == 0
    down = await h.wait_event("network.vpn_down")
    assert down.data["interfaces"] == [name]
    assert down.severity == "medium"
    started = await h.wait_event("away.started")
    assert started.data["source"] == "vpn"
    await h.wait_event("screen.locked")
    assert logind.locked("c1")
    # up again: reported, the booth stays locked until the operator unlocks
    assert ip("link", "set", "dev", name, "up").returncode == 0
    await h.wait_event("network.vpn_up", lambda e: e is not up)
    assert logind.locked("c1")
    # the VPN client dies: its interface vanishes, which is down too
    tun.close()
    await h.wait_event("network.vpn_down", lambda e: e is not down)
    assert h.lock.status()["vpn"]["state"] == "down"
