"""USB guard against umockdev: mocked sysfs, real uevents, the real agent daemon as a subprocess."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.usb import descbuild as d

pytestmark = pytest.mark.umockdev
umock = pytest.importorskip("tests.usb.umock", reason="PyGObject with UMockdev typelib not installed")

if not umock.under_wrapper():
    pytest.skip("run under umockdev-wrapper (tests/run.sh does)", allow_module_level=True)


@pytest.fixture
def bed() -> umock.Bed:
    return umock.Bed()


@pytest.fixture
def agent_factory(bed: umock.Bed, tmp_path: Path) -> Iterator[object]:
    agents: list[umock.Agent] = []

    def make(usb: str = "", name: str = "a") -> umock.Agent:
        (tmp_path / name).mkdir(exist_ok=True)
        agent = umock.Agent(bed, tmp_path / name, usb)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.stop()


def started(bed: umock.Bed, agent_factory: object, usb: str = "") -> tuple[str, umock.Agent]:
    bus = bed.add_bus(1)
    agent = agent_factory(usb)  # type: ignore[operator]
    agent.start()
    return bus, agent


def test_bus_locked_and_stick_never_authorized(bed: umock.Bed, agent_factory: object) -> None:
    bus, agent = started(bed, agent_factory)
    assert bed.attr(bus, "authorized_default") == "0"
    assert bed.attr(bus, "interface_authorized_default") == "0"
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE], product=b"Cruzer Blade", serial=b"4C530001")
    data = agent.usb_event("usb.device.blocked", "1-1")
    assert bed.attr(stick, "authorized") == "0"
    assert data["rule"] == "block-mass-storage"
    assert data["vendor_id"] == "0781"
    assert data["product_id"] == "5567"
    assert data["product"] == "Cruzer Blade"
    assert data["serial"] == "4C530001"
    assert data["interface_classes"] == ["mass_storage"]
    assert (data["mode"], data["outcome"], data["bus"]) == ("enforce", "blocked", 1)
    bed.unplug(stick)
    removed = agent.usb_event("usb.device.removed", "1-1")
    assert removed["rule"] == "block-mass-storage"


@pytest.mark.parametrize(
    ("classes", "rule"),
    [
        ([d.MTP, d.ADB], "block-mtp"),
        ([d.RNDIS, d.CDC_DATA], "block-tethering"),
        ([d.CDC_ECM, d.CDC_DATA], "block-tethering"),
    ],
    ids=["mtp", "rndis", "cdc-ether"],
)
def test_phone(bed: umock.Bed, agent_factory: object, classes: list[d.Iface], rule: str) -> None:
    bus, agent = started(bed, agent_factory)
    phone = bed.plug(bus, "1-2", 0x18D1, 0x4EE7, classes, product=b"Pixel 7")
    data = agent.usb_event("usb.device.blocked", "1-2")
    assert data["rule"] == rule
    assert bed.attr(phone, "authorized") == "0"


def test_headset_and_keyboard_authorized_with_their_interfaces(bed: umock.Bed, agent_factory: object) -> None:
    bus, agent = started(bed, agent_factory)
    headset_classes = [d.AUDIO_CONTROL, d.AUDIO_STREAM, d.AUDIO_STREAM, d.HID]
    headset = bed.plug(bus, "1-3", 0x0B0E, 0x0412, headset_classes, product=b"Jabra EVOLVE 20")
    umock.wait_for(lambda: bed.attr(headset, "authorized") == "1", what="headset authorized")
    names = bed.kernel_configures(headset, headset_classes)
    for name in names:
        umock.wait_for(lambda n=name: bed.attr(f"{headset}/{n}", "authorized") == "1", what=name)
    data = agent.usb_event("usb.device.allowed", "1-3")
    assert (data["verdict"], data["rule"]) == ("allow", "allow-audio")
    assert data["interface_classes"] == ["audio", "hid"]
    assert (bed.sys / "bus/usb/drivers_probe").read_text().startswith("1-3:1.")

    keyboard = bed.plug(bus, "1-4", 0x046D, 0xC31C, [d.KEYBOARD], product=b"USB Keyboard")
    umock.wait_for(lambda: bed.attr(keyboard, "authorized") == "1", what="keyboard authorized")
    bed.kernel_configures(keyboard, [d.KEYBOARD])
    umock.wait_for(lambda: bed.attr(f"{keyboard}/1-4:1.0", "authorized") == "1", what="keyboard interface")
    assert agent.usb_event("usb.device.allowed", "1-4")["rule"] == "allow-hid"


def test_composite_headset_storage_interface_blocked(bed: umock.Bed, agent_factory: object) -> None:
    bus, agent = started(bed, agent_factory)
    classes = [d.AUDIO_CONTROL, d.AUDIO_STREAM, d.HID, d.STORAGE]
    headset = bed.plug(bus, "1-5", 0x0B0E, 0x0420, classes, product=b"Headset with firmware disk")
    umock.wait_for(lambda: bed.attr(headset, "authorized") == "1", what="headset authorized")
    bed.kernel_configures(headset, classes)
    for n in range(3):
        umock.wait_for(lambda n=n: bed.attr(f"{headset}/1-5:1.{n}", "authorized") == "1", what=f"iface {n}")
    blocked = agent.usb_event("usb.interface.blocked", "1-5")
    assert (blocked["interface"], blocked["rule"]) == ("1-5:1.3", "block-mass-storage")
    assert blocked["interface_classes"] == ["mass_storage"]
    allowed = agent.usb_event("usb.device.allowed", "1-5")
    assert allowed["verdict"] == "partial"
    assert bed.attr(f"{headset}/1-5:1.3", "authorized") == "0"


def test_vendor_interface_named_mtp_blocked_once_visible(bed: umock.Bed, agent_factory: object) -> None:
    rules = '[[usb.rules]]\nid = "vendor-ok"\naction = "allow"\ninterfaces_any = ["vendor_specific"]\n'
    # The user's rule would allow vendor-specific interfaces, but block-mtp sits before it here.
    rules = '[[usb.rules]]\nid = "no-mtp"\naction = "block"\ninterfaces_any = ["mtp"]\n' + rules
    bus, agent = started(bed, agent_factory, rules)
    classes = [d.HID, d.VENDOR]
    dev = bed.plug(bus, "1-6", 0x04E8, 0x6860, classes, product=b"Galaxy")
    umock.wait_for(lambda: bed.attr(dev, "authorized") == "1", what="device authorized")
    bed.kernel_configures(dev, classes, labels={1: b"MTP"})
    umock.wait_for(lambda: bed.attr(f"{dev}/1-6:1.0", "authorized") == "1", what="hid interface")
    blocked = agent.wait_event(
        lambda e: e["type"] == "usb.interface.blocked" and e["data"].get("label") == "MTP"
    )
    assert blocked["data"]["rule"] == "no-mtp"
    assert bed.attr(f"{dev}/1-6:1.1", "authorized") == "0"


def test_hub_with_devices_behind_it(bed: umock.Bed, agent_factory: object) -> None:
    bus, agent = started(bed, agent_factory)
    hub = bed.plug(bus, "1-7", 0x05E3, 0x0610, [d.HUB], product=b"USB2.0 Hub")
    umock.wait_for(lambda: bed.attr(hub, "authorized") == "1", what="hub authorized")
    bed.kernel_configures(hub, [d.HUB])
    umock.wait_for(lambda: bed.attr(f"{hub}/1-7:1.0", "authorized") == "1", what="hub interface")
    kb = bed.plug(hub, "1-7.1", 0x046D, 0xC31C, [d.KEYBOARD])
    stick = bed.plug(hub, "1-7.2", 0x0781, 0x5567, [d.STORAGE])
    umock.wait_for(lambda: bed.attr(kb, "authorized") == "1", what="keyboard behind hub")
    assert agent.usb_event("usb.device.blocked", "1-7.2")["rule"] == "block-mass-storage"
    assert bed.attr(stick, "authorized") == "0"
    assert agent.usb_event("usb.device.allowed", "1-7")["rule"] == "allow-hubs"


def test_hostile_strings_and_descriptors(bed: umock.Bed, agent_factory: object) -> None:
    bus, agent = started(bed, agent_factory)
    evil = b"\x1b[2J\x07Keyboard\r\n\xff\xfe\xe2\x80\xae" + b"A" * 1_000_000
    kb = bed.plug(
        bus,
        "1-8",
        0x1234,
        0x0001,
        [d.KEYBOARD],
        product=evil,
        manufacturer=b"\x00\x01\x02",
        serial=b"\xc3(" * 5000,
    )
    umock.wait_for(lambda: bed.attr(kb, "authorized") == "1", what="keyboard authorized")
    data = agent.usb_event("usb.device.allowed", "1-8")
    assert data["product"].startswith("Keyboard"), data["product"][:40]
    assert len(data["product"]) <= 128
    assert len(data["serial"]) <= 128
    assert data["manufacturer"] is None
    assert all(ch.isprintable() for ch in data["product"] + data["serial"])
    for n, raw in enumerate(
        [
            b"",
            b"\x12\x01" + b"\xff" * 5,
            d.device_descriptor(1, 2) + b"\x09\x02\xff\xff" * 3,
            d.device_descriptor(1, 2) + b"\x09\x02\x0c\x00\x01\x01\x00\x80\x32\x00\x04\x00",
        ]
    ):
        port = f"1-{10 + n}"
        dev = bed.plug(bus, port, 0x1234, 0x0002, [], raw=raw, product=b"\x00" * 3)
        blocked = agent.usb_event("usb.device.blocked", port)
        assert blocked["rule"] == "invalid-descriptors"
        assert bed.attr(dev, "authorized") == "0"
    # Still alive and deciding.
    after = bed.plug(bus, "1-20", 0x046D, 0xC31C, [d.KEYBOARD])
    umock.wait_for(lambda: bed.attr(after, "authorized") == "1", what="keyboard after garbage")


def test_burst_of_insertions(bed: umock.Bed, agent_factory: object) -> None:
    bus, agent = started(bed, agent_factory)
    expected = {}
    # Bursts stay under the mock's datagram queue length (net.unix.max_dgram_qlen = 10).
    for burst in range(4):
        for i in range(8):
            port = f"1-{burst + 1}.{i + 1}"
            if i % 2:
                expected[port] = bed.plug(bus, port, 0x0781, 0x5567, [d.STORAGE]), "0"
            else:
                expected[port] = bed.plug(bus, port, 0x046D, 0xC31C, [d.KEYBOARD]), "1"
        ports = list(expected)[-8:]
        agent.wait_event(lambda e, p=ports: {x["data"].get("port") for x in agent.events()} >= set(p))
    for port, (path, want) in expected.items():
        assert bed.attr(path, "authorized") == want, port
    kinds = [(e["type"], e["data"]["port"]) for e in agent.events() if e["type"].startswith("usb.device")]
    assert len(kinds) == 32
    out = agent.cli("status", "--json")
    assert out.returncode == 0, out.stderr
    usb = json.loads(out.stdout)["usb"]
    assert (usb["counters"]["blocked"], usb["counters"]["allowed"], usb["events_overflowed"]) == (16, 16, 0)
    assert usb["mode"] == "enforce"


def test_restart_keeps_blocked_devices_blocked(bed: umock.Bed, agent_factory: object) -> None:
    bus, agent = started(bed, agent_factory)
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE])
    kb = bed.plug(bus, "1-2", 0x046D, 0xC31C, [d.KEYBOARD])
    agent.usb_event("usb.device.blocked", "1-1")
    umock.wait_for(lambda: bed.attr(kb, "authorized") == "1", what="keyboard")
    assert agent.stop() == 0
    # Stopping never re-authorizes: the bus stays locked, the stick unauthorized.
    assert bed.attr(bus, "authorized_default") == "0"
    assert bed.attr(stick, "authorized") == "0"
    before = len(agent.events())
    agent.start()
    data = agent.wait_event(
        lambda e: e["seq"] > before and e["type"] == "usb.device.blocked" and e["data"]["port"] == "1-1"
    )["data"]
    assert (data["origin"], data["rule"]) == ("present", "block-mass-storage")
    assert bed.attr(stick, "authorized") == "0"
    assert bed.attr(kb, "authorized") == "1"


def test_present_device_authorized_before_start_is_blocked(bed: umock.Bed, agent_factory: object) -> None:
    bus = bed.add_bus(1)
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE], authorized=b"1")
    agent = agent_factory()  # type: ignore[operator]
    agent.start()
    assert agent.usb_event("usb.device.blocked", "1-1")["origin"] == "present"
    assert bed.attr(stick, "authorized") == "0"


@pytest.mark.parametrize(
    ("policy", "want", "rule"), [("keep", "1", "present-keep"), ("block", "0", "present-block")]
)
def test_present_policies(bed: umock.Bed, agent_factory: object, policy: str, want: str, rule: str) -> None:
    bus = bed.add_bus(1)
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE], authorized=b"1")
    kb = bed.plug(bus, "1-2", 0x046D, 0xC31C, [d.KEYBOARD], authorized=b"1")
    agent = agent_factory(f'present_policy = "{policy}"')  # type: ignore[operator]
    agent.start()
    kind = "usb.device.allowed" if want == "1" else "usb.device.blocked"
    assert agent.usb_event(kind, "1-1")["rule"] == rule
    assert agent.usb_event(kind, "1-2")["rule"] == rule
    assert bed.attr(stick, "authorized") == want
    assert bed.attr(kb, "authorized") == want


def test_audit_mode_changes_nothing(bed: umock.Bed, agent_factory: object) -> None:
    bus, agent = started(bed, agent_factory, 'mode = "audit"')
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE], authorized=b"1")
    data = agent.usb_event("usb.device.blocked", "1-1")
    assert (data["outcome"], data["enforced"], data["mode"], data["rule"]) == (
        "would_block",
        False,
        "audit",
        "block-mass-storage",
    )
    assert bed.attr(stick, "authorized") == "1"
    assert bed.attr(bus, "authorized_default") == "1"
    ev = agent.wait_event(lambda e: e["type"] == "usb.device.blocked")
    assert ev["severity"] == "low"


def test_off_mode_does_nothing(bed: umock.Bed, agent_factory: object) -> None:
    bus, agent = started(bed, agent_factory, 'mode = "off"')
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE], authorized=b"1")
    kb = bed.plug(bus, "1-2", 0x046D, 0xC31C, [d.KEYBOARD])
    agent.stop()
    assert bed.attr(bus, "authorized_default") == "1"
    assert bed.attr(stick, "authorized") == "1"
    assert bed.attr(kb, "authorized") == "0"
    assert not [e for e in agent.events() if e["type"].startswith("usb.")]


def test_safety_net_block_device_on_usb(bed: umock.Bed, agent_factory: object) -> None:
    # A misconfigured rule lets a stick through; the block device that appears is caught.
    rules = '[[usb.rules]]\nid = "oops"\naction = "allow"\nvendor_id = "0781"\n'
    bus, agent = started(bed, agent_factory, rules)
    stick = bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE])
    umock.wait_for(lambda: bed.attr(stick, "authorized") == "1", what="stick allowed by the bad rule")
    (iface,) = bed.kernel_configures(stick, [d.STORAGE])
    umock.wait_for(lambda: bed.attr(f"{stick}/{iface}", "authorized") == "1", what="iface")
    host = bed.tb.add_device("scsi", "host0", f"{stick}/{iface}", [], [])
    bed.tb.add_device("block", "sda", host, ["size", "2048"], ["DEVNAME", "/dev/sda", "DEVTYPE", "disk"])
    data = agent.wait_event(lambda e: e["type"] == "usb.storage.detected")
    assert data["severity"] == "critical"
    assert (data["data"]["port"], data["data"]["block_device"], data["data"]["rule"]) == (
        "1-1",
        "sda",
        "oops",
    )
    assert bed.attr(stick, "authorized") == "0"


def test_new_bus_is_locked(bed: umock.Bed, agent_factory: object) -> None:
    _, _agent = started(bed, agent_factory)
    bus2 = bed.add_bus(2)
    umock.wait_for(lambda: bed.attr(bus2, "authorized_default") == "0", what="new bus locked")
    umock.wait_for(lambda: bed.attr(bus2, "interface_authorized_default") == "0", what="new bus iface")


def test_usb_list_works_with_agent_down(bed: umock.Bed, agent_factory: object) -> None:
    bus = bed.add_bus(1)
    bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE], product=b"Cruzer")
    bed.plug(bus, "1-2", 0x0B0E, 0x0420, [d.AUDIO_CONTROL, d.HID, d.STORAGE], product=b"Headset")
    agent = agent_factory()  # type: ignore[operator]
    out = agent.cli("usb", "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["port"]: r for r in json.loads(out.stdout)["devices"]}
    assert (rows["1-1"]["verdict"], rows["1-1"]["rule"]) == ("block", "block-mass-storage")
    assert rows["1-2"]["verdict"] == "partial"
    assert [i["action"] for i in rows["1-2"]["interfaces"]] == ["allow", "allow", "block"]
    text = agent.cli("usb", "list")
    assert "1-2:1.2  mass_storage [08/06/50]  block  rule: block-mass-storage" in text.stdout
