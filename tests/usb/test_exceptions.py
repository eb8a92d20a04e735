"""Temporary USB exceptions.

Part 1 (plain): the real guard and exceptions on a sysfs tree of plain files, with a fake clock — grant,
use, expiry, removal, recovery after a crash, the collector command, bad input.
Part 2 (umockdev): the real agent as a subprocess on a umockdev testbed, driven through `boothguard usb
allow` — authorized, blocked again at expiry, at removal and re-insertion, after a restart; non-root → 77.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boothguard.events import Draft
from boothguard.usb.exceptions import (
    DeviceSpec,
    GrantError,
    UsbExceptions,
    allow_from_command,
    parse_duration,
)
from boothguard.usb.guard import Uevent, UsbGuard
from boothguard.usb.settings import UsbRule, UsbSection
from boothguard.usb.sysfs import Sysfs
from tests.helpers.asuser import run_as
from tests.usb import descbuild as d

# -- part 1: plain files, fake clock ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tree:
    """A /sys/bus/usb/devices of plain files (what the guard reads and writes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.devices = root / "bus" / "usb" / "devices"
        self.devices.mkdir(parents=True)
        (root / "bus" / "usb" / "drivers_probe").write_text("")
        bus = self.devices / "usb1"
        bus.mkdir()
        (bus / "authorized_default").write_text("1\n")
        (bus / "interface_authorized_default").write_text("1\n")

    def plug(self, port: str, vid: int, pid: int, classes: list[d.Iface], serial: str = "0001") -> None:
        dev = self.devices / port
        dev.mkdir()
        (dev / "descriptors").write_bytes(d.descriptors(vid, pid, classes))
        (dev / "idVendor").write_text(f"{vid:04x}\n")
        (dev / "idProduct").write_text(f"{pid:04x}\n")
        (dev / "authorized").write_text("0\n")
        (dev / "product").write_text("Cruzer Blade\n")
        (dev / "serial").write_text(serial + "\n")
        (dev / "busnum").write_text("1\n")
        for n, _ in enumerate(classes):
            iface = dev / f"{port}:1.{n}"
            iface.mkdir()
            (iface / "authorized").write_text("0\n")

    def unplug(self, port: str) -> None:
        import shutil

        shutil.rmtree(self.devices / port)

    def authorized(self, port: str, iface: str | None = None) -> str:
        path = self.devices / port / (f"{iface}/authorized" if iface else "authorized")
        return path.read_text().strip()


class Rig:
    def __init__(self, tmp: Path, settings: UsbSection | None = None) -> None:
        self.tree = Tree(tmp / "sys")
        self.clock = Clock()
        self.events: list[Draft] = []
        self.state = tmp / "usb-exceptions.json"
        self.settings = settings or UsbSection(sysfs_root=tmp / "sys")
        self.guard = UsbGuard(Sysfs(tmp / "sys"), self.settings, self.events.append, self.clock)
        self.exceptions = self.new_exceptions()

    def new_exceptions(self) -> UsbExceptions:
        ex = UsbExceptions(
            self.guard, self.guard.sysfs, self.events.append, self.clock, lambda: 1.7e9, self.state
        )
        self.guard.exceptions = ex
        return ex

    def insert(self, port: str, vid: int = 0x0781, pid: int = 0x5567, serial: str = "0001") -> None:
        self.tree.plug(port, vid, pid, [d.STORAGE], serial)
        self.guard.on_uevent(Uevent("add", "usb", "usb_device", port, f"/devices/usb1/{port}"))

    def remove(self, port: str) -> None:
        self.tree.unplug(port)
        self.guard.on_uevent(Uevent("remove", "usb", "usb_device", port, f"/devices/usb1/{port}"))

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def last(self, etype: str) -> dict[str, Any]:
        return dict(next(e for e in reversed(self.events) if e.type == etype).data)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    r = Rig(tmp_path)
    r.guard.lock_buses()
    return r


def test_parse_duration() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("90s") == 90
    assert parse_duration("30m") == 1800
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2H") == 7200
    assert parse_duration("1d") == 86400
    for bad in ("", "abc", "10x", "m", "1h-3m"):
        with pytest.raises(GrantError):
            parse_duration(bad)


def test_device_spec() -> None:
    assert DeviceSpec.parse("1-2.3") == DeviceSpec(port="1-2.3")
    assert DeviceSpec.parse("0781:5567") == DeviceSpec(vendor_id="0781", product_id="5567")
    assert DeviceSpec.parse("0781:5567:4C53") == DeviceSpec(None, "0781", "5567", "4C53")
    assert str(DeviceSpec.parse("0781:5567:4C53")) == "0781:5567:4C53"
    for bad in ("usb1", "0781", "0781:55", "1-", ""):
        with pytest.raises(GrantError):
            DeviceSpec.parse(bad)


def test_grant_present_device_then_expiry(rig: Rig) -> None:
    rig.insert("1-1")
    assert rig.tree.authorized("1-1") == "0"
    grant, ports = rig.exceptions.grant("1-1", 600, "firmware update", "alice", "cli")
    assert ports == ["1-1"]
    assert rig.tree.authorized("1-1") == "1"
    assert rig.tree.authorized("1-1", "1-1:1.0") == "1"  # the blocked storage interface too
    granted, used = rig.last("usb.exception.granted"), rig.last("usb.exception.used")
    assert (granted["granted_by"], granted["reason"], granted["device"]) == (
        "alice",
        "firmware update",
        "1-1",
    )
    assert (used["port"], used["rule"], used["grant_id"]) == ("1-1", "block-mass-storage", grant.id)
    assert json.loads(rig.state.read_text())["grants"][grant.id]["ports"] == ["1-1"]

    rig.clock.now += 599
    assert rig.exceptions.expire_due() == []
    assert rig.tree.authorized("1-1") == "1"
    rig.clock.now += 1
    assert [g.id for g in rig.exceptions.expire_due()] == [grant.id]
    assert rig.tree.authorized("1-1") == "0"
    expired = rig.last("usb.exception.expired")
    assert (expired["why"], expired["granted_by"], expired["blocked"], expired["uses"]) == (
        "time_up",
        "alice",
        ["1-1"],
        1,
    )
    assert rig.last("usb.device.blocked")["origin"] == "exception_ended"
    assert json.loads(rig.state.read_text()) == {"grants": {}}


def test_grant_by_ids_waits_for_insertion_and_ends_at_removal(rig: Rig) -> None:
    rig.exceptions.grant("0781:5567:SN1", 600, "vendor diagnostics", "bob", "collector")
    rig.insert("1-3", serial="OTHER")
    assert rig.tree.authorized("1-3") == "0"  # serial differs
    rig.insert("1-2", serial="SN1")
    assert rig.tree.authorized("1-2") == "1"
    used = rig.last("usb.exception.used")
    assert used["origin"] == "inserted"
    # the strings are read after the write, yet the event and the removal report carry them
    assert (used["serial"], used["product"]) == ("SN1", "Cruzer Blade")
    rig.remove("1-2")
    assert rig.last("usb.device.removed")["product"] == "Cruzer Blade"
    revoked = rig.last("usb.exception.revoked")
    assert (revoked["why"], revoked["granted_by"], revoked["source"]) == (
        "device_removed",
        "bob",
        "collector",
    )
    assert not rig.exceptions.grants
    rig.insert("1-2", serial="SN1")  # re-insertion: blocked again
    assert rig.tree.authorized("1-2") == "0"
    assert rig.last("usb.device.blocked")["port"] == "1-2"


def test_string_rules_see_the_strings_before_the_write(tmp_path: Path) -> None:
    """A rule on serial / product name: those strings are read before deciding (the rest after)."""
    rule = UsbRule(id="it-stick", action="allow", serial=["SN1"], product_name="cruzer*")
    r = Rig(tmp_path, UsbSection(sysfs_root=tmp_path / "sys", rules=[rule]))
    r.guard.lock_buses()
    r.insert("1-2", serial="SN1")
    assert r.tree.authorized("1-2") == "1"
    allowed = r.last("usb.device.allowed")
    assert (allowed["rule"], allowed["serial"], allowed["bus"]) == ("it-stick", "SN1", 1)
    r.insert("1-3", serial="SN2")
    assert r.tree.authorized("1-3") == "0"
    assert r.last("usb.device.blocked")["rule"] == "block-mass-storage"


def test_an_inserted_device_after_expiry_is_blocked(rig: Rig) -> None:
    rig.exceptions.grant("0781:5567", 60, "window", "carol", "cli")
    rig.clock.now += 61
    rig.insert("1-4")  # the clock ran out before the loop noticed: still blocked
    assert rig.tree.authorized("1-4") == "0"
    rig.exceptions.expire_due()
    assert rig.last("usb.exception.expired")["blocked"] == []


def test_revoke_all_blocks_again(rig: Rig) -> None:
    rig.insert("1-1")
    rig.exceptions.grant("1-1", 600, "x", "alice", "cli")
    rig.exceptions.revoke_all("agent_stopping")
    assert rig.tree.authorized("1-1") == "0"
    assert rig.last("usb.exception.revoked")["why"] == "agent_stopping"


def test_recover_after_a_crash_blocks_what_a_grant_let_through(tmp_path: Path) -> None:
    settings = UsbSection(sysfs_root=tmp_path / "sys", present_policy="keep")
    rig = Rig(tmp_path, settings)
    rig.insert("1-1")
    rig.exceptions.grant("1-1", 600, "x", "alice", "cli")
    assert rig.tree.authorized("1-1") == "1"
    # kill -9: nothing revoked. A new run keeps present devices as they are, then recovers.
    fresh = Rig.__new__(Rig)
    fresh.__dict__.update(rig.__dict__)
    fresh.events = []
    fresh.guard = UsbGuard(Sysfs(tmp_path / "sys"), settings, fresh.events.append, rig.clock)
    fresh.exceptions = fresh.new_exceptions()
    fresh.guard.apply_present()
    assert rig.tree.authorized("1-1") == "1"  # keep
    fresh.exceptions.recover()
    assert rig.tree.authorized("1-1") == "0"
    revoked = fresh.last("usb.exception.revoked")
    assert (revoked["why"], revoked["blocked"], revoked["granted_by"]) == ("agent_restart", ["1-1"], "alice")


def test_refusals(rig: Rig) -> None:
    with pytest.raises(GrantError, match="no USB device at 1-9"):
        rig.exceptions.grant("1-9", 60, "x", "alice", "cli")
    with pytest.raises(GrantError, match="reason"):
        rig.exceptions.grant("0781:5567", 60, "  ", "alice", "cli")
    with pytest.raises(GrantError, match="duration"):
        rig.exceptions.grant("0781:5567", 0, "x", "alice", "cli")
    with pytest.raises(GrantError, match="duration"):
        rig.exceptions.grant("0781:5567", 30 * 86400, "x", "alice", "cli")
    assert not [t for t in rig.types() if t.startswith("usb.exception")]


def test_collector_command(rig: Rig) -> None:
    rig.insert("1-1")
    assert allow_from_command(rig.exceptions, {"type": "lock"}) is None
    assert allow_from_command(rig.exceptions, {"type": "usb_allow", "device": "1-1", "reason": "x"}) is False
    cmd = {
        "type": "usb_allow",
        "device": "0781:5567",
        "for_seconds": 300,
        "reason": "maintenance window",
        "granted_by": "secadmin",
    }
    assert allow_from_command(rig.exceptions, cmd) is True
    assert rig.tree.authorized("1-1") == "1"
    granted = rig.last("usb.exception.granted")
    assert (granted["granted_by"], granted["source"], granted["for_seconds"]) == (
        "secadmin",
        "collector",
        300,
    )


def test_storage_safety_net_spares_an_excepted_stick(rig: Rig) -> None:
    rig.insert("1-1")
    rig.exceptions.grant("1-1", 600, "copy the firmware image", "alice", "cli")
    rig.guard.on_uevent(Uevent("add", "block", "disk", "sda", "/devices/usb1/1-1/1-1:1.0/host0/sda"))
    assert rig.tree.authorized("1-1") == "1"
    detected = rig.last("usb.storage.detected")
    assert (detected["action"], detected["exception"]) == (
        "kept_by_exception",
        rig.last("usb.exception.used")["grant_id"],
    )


def test_usb_plugin_command_and_stop(tmp_path: Path) -> None:
    """The plugin routes `usb_allow` commands and revokes every grant when it stops."""
    from boothguard.agent.plugin import AgentContext
    from boothguard.config import AgentConfig
    from boothguard.usb.plugin import UsbPlugin

    tree = Tree(tmp_path / "sys")
    tree.plug("1-1", 0x0781, 0x5567, [d.STORAGE])
    config = AgentConfig(agent={"state_dir": tmp_path / "state"}, usb={"sysfs_root": tmp_path / "sys"})
    (tmp_path / "state").mkdir()
    events: list[Draft] = []

    class Emitter:
        async def emit(self, draft: Draft) -> None:
            events.append(draft)

        def try_emit(self, draft: Draft) -> bool:
            events.append(draft)
            return True

    class Registry:
        ops: dict[str, Any] = {}

        def register(self, op: str, handler: Any, access: str) -> None:
            self.ops[op] = access

    class NoSource:
        def __init__(self, kind: str) -> None:
            pass

        def start(self, loop: Any, callback: Any) -> None:
            pass

        def stop(self) -> None:
            pass

    async def scenario() -> None:
        plugin = UsbPlugin(config.usb, source_factory=NoSource)  # type: ignore[arg-type]
        registry = Registry()
        ctx = AgentContext(config, Emitter(), registry, lambda: 1.7e9, lambda: 5.0)
        await plugin.start(ctx)
        assert registry.ops["usb.allow"] == "root"
        assert tree.authorized("1-1") == "0"
        cmd = {"type": "usb_allow", "device": "1-1", "for_seconds": 60, "reason": "r", "granted_by": "sec"}
        assert await plugin.handle_command(cmd) is True
        assert tree.authorized("1-1") == "1"
        assert plugin.status()["exceptions"][0]["granted_by"] == "sec"
        await plugin.stop()
        assert tree.authorized("1-1") == "0"

    asyncio.run(scenario())
    assert [e.data["why"] for e in events if e.type == "usb.exception.revoked"] == ["agent_stopping"]


# -- part 2: the real agent on a umockdev testbed -------------------------------------------------------


@pytest.fixture
def umock() -> Any:
    mod = pytest.importorskip("tests.usb.umock", reason="PyGObject with UMockdev typelib not installed")
    if not mod.under_wrapper():
        pytest.skip("run under umockdev-wrapper (tests/run.sh does)")
    return mod


@pytest.fixture
def bed(umock: Any) -> Any:
    return umock.Bed()


@pytest.fixture
def agents(bed: Any, umock: Any, tmp_path: Path) -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for agent in made:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.stop()


def start_agent(umock: Any, bed: Any, tmp: Path, agents: list[Any], usb: str = "") -> Any:
    agent = umock.Agent(bed, tmp, usb)
    agents.append(agent)
    agent.start()
    return agent


def exception_event(agent: Any, etype: str, after: int = 0) -> dict[str, Any]:
    ev: dict[str, Any] = agent.wait_event(lambda e: e["type"] == etype and e["seq"] > after, timeout=15)
    return ev


def replug(bed: Any, bus: str, port: str) -> str:
    """Plug a stick again at a port it was removed from (drop the stale bus/usb/devices link first)."""
    link = bed.sys / "bus" / "usb" / "devices" / port
    if link.is_symlink():
        link.unlink()
    path: str = bed.plug(bus, port, 0x0781, 0x5567, [d.STORAGE], product=b"Cruzer Blade", serial=b"SN1")
    return path


@pytest.mark.umockdev
def test_allowed_device_authorized_then_blocked_at_expiry(
    umock: Any, bed: Any, agents: list[Any], tmp_path: Path
) -> None:
    bus = bed.add_bus(1)
    agent = start_agent(umock, bed, tmp_path, agents)
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE], product=b"Cruzer Blade")
    agent.usb_event("usb.device.blocked", "1-1")
    out = agent.cli("usb", "allow", "1-1", "--for", "2s", "--reason", "firmware update")
    assert out.returncode == 0, out.stderr
    assert "allowed 1-1 until" in out.stdout
    assert bed.attr(stick, "authorized") == "1"
    (iface,) = bed.kernel_configures(stick, [d.STORAGE])
    umock.wait_for(lambda: bed.attr(f"{stick}/{iface}", "authorized") == "1", what="storage interface")
    granted = exception_event(agent, "usb.exception.granted")["data"]
    assert (granted["granted_by"], granted["reason"], granted["source"]) == ("root", "firmware update", "cli")
    used = exception_event(agent, "usb.exception.used")
    assert (used["data"]["port"], used["data"]["rule"], used["severity"]) == (
        "1-1",
        "block-mass-storage",
        "medium",
    )
    status = json.loads(agent.cli("status", "--json").stdout)["usb"]
    assert [g["ports"] for g in status["exceptions"]] == [["1-1"]]
    # The grant runs out: blocked again, within a bounded wait.
    umock.wait_for(lambda: bed.attr(stick, "authorized") == "0", timeout=10, what="blocked at expiry")
    expired = exception_event(agent, "usb.exception.expired")["data"]
    assert (expired["why"], expired["blocked"], expired["granted_by"]) == ("time_up", ["1-1"], "root")
    assert not json.loads(agent.cli("status", "--json").stdout)["usb"]["exceptions"]


@pytest.mark.umockdev
def test_removal_ends_the_grant_and_reinsertion_is_blocked(
    umock: Any, bed: Any, agents: list[Any], tmp_path: Path
) -> None:
    bus = bed.add_bus(1)
    agent = start_agent(umock, bed, tmp_path, agents)
    out = agent.cli("usb", "allow", "0781:5567:SN1", "--for", "10m", "--reason", "maintenance window")
    assert out.returncode == 0, out.stderr
    assert "none present yet" in out.stdout
    stick = replug(bed, bus, "1-2")
    umock.wait_for(lambda: bed.attr(stick, "authorized") == "1", what="authorized by the grant")
    assert exception_event(agent, "usb.exception.used")["data"]["origin"] == "inserted"
    bed.unplug(stick)
    revoked = exception_event(agent, "usb.exception.revoked")
    assert (revoked["data"]["why"], revoked["data"]["uses"]) == ("device_removed", 1)
    mark = revoked["seq"]
    stick = replug(bed, bus, "1-2")
    blocked = agent.wait_event(
        lambda e: e["seq"] > mark and e["type"] == "usb.device.blocked" and e["data"]["port"] == "1-2"
    )
    assert blocked["data"]["origin"] == "inserted"
    assert bed.attr(stick, "authorized") == "0"


@pytest.mark.umockdev
def test_agent_restart_ends_the_grant(umock: Any, bed: Any, agents: list[Any], tmp_path: Path) -> None:
    bus = bed.add_bus(1)
    agent = start_agent(umock, bed, tmp_path, agents)
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE])
    agent.usb_event("usb.device.blocked", "1-1")
    assert agent.cli("usb", "allow", "1-1", "--for", "1h", "--reason", "x").returncode == 0
    assert bed.attr(stick, "authorized") == "1"
    assert agent.stop() == 0
    assert bed.attr(stick, "authorized") == "0"  # stopping ended it
    revoked = exception_event(agent, "usb.exception.revoked")
    assert revoked["data"]["why"] == "agent_stopping"
    agent.start()
    assert bed.attr(stick, "authorized") == "0"
    again = agent.wait_event(
        lambda e: (
            e["seq"] > revoked["seq"] and e["type"] == "usb.device.blocked" and e["data"]["port"] == "1-1"
        )
    )
    assert again["data"]["origin"] == "present"


@pytest.mark.umockdev
def test_agent_killed_then_restarted_blocks_again(
    umock: Any, bed: Any, agents: list[Any], tmp_path: Path
) -> None:
    """kill -9 revokes nothing; with present_policy "keep" the restart would keep the stick authorized,
    so the saved grant state is what blocks it again."""
    bus = bed.add_bus(1)
    agent = start_agent(umock, bed, tmp_path, agents, 'present_policy = "keep"')
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE])
    agent.usb_event("usb.device.blocked", "1-1")
    assert agent.cli("usb", "allow", "1-1", "--for", "1h", "--reason", "x").returncode == 0
    assert bed.attr(stick, "authorized") == "1"
    before = len(agent.events())
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait(timeout=10)
    assert bed.attr(stick, "authorized") == "1"
    agent.start()
    revoked = exception_event(agent, "usb.exception.revoked", after=before)
    assert (revoked["data"]["why"], revoked["data"]["blocked"]) == ("agent_restart", ["1-1"])
    assert bed.attr(stick, "authorized") == "0"


@pytest.mark.umockdev
def test_non_root_refused_with_77(umock: Any, bed: Any, agents: list[Any], tmp_path: Path) -> None:
    import tempfile

    from boothguard.agent.client import request
    from boothguard.cli import main
    from boothguard.errors import PermissionDenied

    shared = Path(tempfile.mkdtemp(prefix="bg-exc-"))
    shared.chmod(0o755)
    bus = bed.add_bus(1)
    agent = start_agent(umock, bed, shared, agents)
    agent.config.chmod(0o644)
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE])
    agent.usb_event("usb.device.blocked", "1-1")
    nobody = pwd.getpwnam("nobody")
    argv = ["usb", "allow", "1-1", "--for", "1h", "--reason", "x", "--config", str(agent.config)]
    assert run_as(nobody.pw_uid, nobody.pw_gid, lambda: main(argv)) == 77

    def direct() -> int:  # past the CLI's own check: the agent refuses the op for non-root peers
        try:
            request(shared / "run" / "agent.sock", "usb.allow", device="1-1", for_seconds=60, reason="x")
        except PermissionDenied:
            return 77
        return 0

    assert (shared / "run" / "agent.sock").exists()
    os.chmod(shared / "run", 0o755)
    assert run_as(nobody.pw_uid, nobody.pw_gid, direct) == 77
    assert bed.attr(stick, "authorized") == "0"
    assert not [e for e in agent.events() if e["type"].startswith("usb.exception")]
    # Root, with a bad device name: exit 1 and a clear message.
    bad = agent.cli("usb", "allow", "1-7", "--for", "1h", "--reason", "x")
    assert (bad.returncode, "no USB device at 1-7" in bad.stderr) == (1, True)
    assert agent.cli("usb", "allow", "1-1", "--for", "soon", "--reason", "x").returncode == 2


@pytest.mark.umockdev
def test_collector_command_grants(umock: Any, bed: Any, agents: list[Any], tmp_path: Path) -> None:
    from tests.helpers.receiver import Receiver

    receiver = Receiver().start()
    try:
        bus = bed.add_bus(1)
        stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE])
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "host.token").write_text(receiver.token)
        receiver.commands = [
            {
                "id": "cmd-usb-1",
                "type": "usb_allow",
                "device": "0781:5567",
                "for_seconds": 3600,
                "reason": "vendor visit",
                "granted_by": "secadmin",
            }
        ]
        agent = umock.Agent(bed, tmp_path)
        agent.config.write_text(
            agent.config.read_text().replace('collector_url = ""', f'collector_url = "{receiver.url}"')
        )
        agents.append(agent)
        agent.start()
        umock.wait_for(lambda: bed.attr(stick, "authorized") == "1", timeout=15, what="granted by command")
        ack = agent.wait_event(lambda e: e["type"] == "agent.command_ack", timeout=15)["data"]
        assert (ack["command_id"], ack["type"], ack["status"]) == ("cmd-usb-1", "usb_allow", "done")
        granted = exception_event(agent, "usb.exception.granted")["data"]
        assert (granted["granted_by"], granted["source"], granted["reason"]) == (
            "secadmin",
            "collector",
            "vendor visit",
        )
    finally:
        receiver.stop()
