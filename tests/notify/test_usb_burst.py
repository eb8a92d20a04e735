"""End to end: the real agent on a umockdev testbed, the real watcher, dbusmock's notification daemon.
Twenty sticks plugged in a burst are one notification ("20 USB devices blocked"), recorded in the spool."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.notify.bus import SessionBus
from tests.session.harness import Proc
from tests.usb import descbuild as d


@pytest.fixture
def umock() -> Any:
    mod = pytest.importorskip("tests.usb.umock", reason="PyGObject with UMockdev typelib not installed")
    if not mod.under_wrapper():
        pytest.skip("run under umockdev-wrapper (tests/run.sh does)")
    return mod


def watcher(agent: Any, bus: SessionBus, locale: str) -> Proc:
    env = {k: v for k, v in agent.env().items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "LC_ALL")}
    env.pop("LD_PRELOAD", None)  # the watcher has nothing to do with the mocked sysfs
    env |= {"XDG_SESSION_ID": "c1", "LANG": locale, "DBUS_SESSION_BUS_ADDRESS": bus.address}
    argv = [sys.executable, "-m", "boothguard", "session", "--config", str(agent.config)]
    return Proc(argv, env).start()


@pytest.mark.umockdev
@pytest.mark.parametrize(("locale", "summary"), [("ja_JP.UTF-8", "USBデバイス20台をブロックしました")])
def test_burst_of_20_blocks_is_one_notification(
    umock: Any, tmp_path: Path, notifications: SessionBus, locale: str, summary: str
) -> None:
    bed = umock.Bed()
    bus = bed.add_bus(1)
    agent = umock.Agent(bed, tmp_path)
    agent.start()
    proc = watcher(agent, notifications, locale)
    try:
        agent.wait_event(lambda e: e["type"] == "session.started", timeout=30)
        ports = []
        for burst in range(3):  # under the mock's datagram queue length (10)
            for i in range(7 if burst < 2 else 6):
                port = f"1-{burst + 1}.{i + 1}"
                bed.plug(bus, port, 0x0781, 0x5567, [d.STORAGE], product=f"Stick {port}".encode())
                ports.append(port)
            agent.wait_event(
                lambda e, p=list(ports): {x["data"].get("port") for x in agent.events()} >= set(p)
            )
        assert len(ports) == 20
        told = agent.wait_event(lambda e: e["type"] == "operator.notified", timeout=20)["data"]
        assert told == {
            "kind": "usb_blocked",
            "count": 20,
            "session": "c1",
            "language": "ja",
            "shown": True,
            "reason": None,
        }
        calls = notifications.notify_calls()
        assert [c["summary"] for c in calls] == [summary]
        assert "許可されていないデバイスは使用できません" in calls[0]["body"]
        blocked = [e for e in agent.events() if e["type"] == "usb.device.blocked"]
        assert len(blocked) == 20
    finally:
        proc.stop()
        agent.stop()
    assert os.environ.get("DBUS_SESSION_BUS_ADDRESS") != notifications.address
