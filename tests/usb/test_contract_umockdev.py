"""Contract: the USB events the real agent produces under umockdev, run through the collector's shipped alert
rules and templates — every field a matching rule names resolves (the title never reads "-:-") — and, end
to end, a blocked stick shipped by the agent to a real collector process reaches a webhook as "0781:5567"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.alerts_check import check
from tests.usb import descbuild as d

pytestmark = pytest.mark.umockdev
umock = pytest.importorskip("tests.usb.umock", reason="PyGObject with UMockdev typelib not installed")

if not umock.under_wrapper():
    pytest.skip("run under umockdev-wrapper (tests/run.sh does)", allow_module_level=True)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[umock.Bed, umock.Agent, str]]:
    bed = umock.Bed()
    bus = bed.add_bus(1)
    # One rule lets a stick through by mistake, so the storage safety net fires too.
    rules = '[[usb.rules]]\nid = "oops"\naction = "allow"\nvendor_id = "090c"\n'
    agent = umock.Agent(bed, tmp_path, rules)
    agent.start()
    try:
        yield bed, agent, bus
    finally:
        agent.stop()


def test_real_usb_events_fill_every_field_of_the_shipped_rules(
    agent: tuple[umock.Bed, umock.Agent, str],
) -> None:
    bed, a, bus = agent
    # usb.device.blocked: a mass-storage stick.
    bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE], product=b"Cruzer Blade", serial=b"4C530001")
    a.usb_event("usb.device.blocked", "1-1")
    # usb.interface.blocked: a headset whose firmware disk interface is blocked.
    classes = [d.AUDIO_CONTROL, d.AUDIO_STREAM, d.HID, d.STORAGE]
    headset = bed.plug(bus, "1-2", 0x0B0E, 0x0420, classes, product=b"Headset")
    umock.wait_for(lambda: bed.attr(headset, "authorized") == "1", what="headset authorized")
    bed.kernel_configures(headset, classes)
    a.usb_event("usb.interface.blocked", "1-2")
    # usb.storage.detected: the misallowed stick's block device appears.
    stick = bed.plug(bus, "1-3", 0x090C, 0x1000, [d.STORAGE], product=b"Flash", serial=None)
    umock.wait_for(lambda: bed.attr(stick, "authorized") == "1", what="stick allowed by the bad rule")
    (iface,) = bed.kernel_configures(stick, [d.STORAGE])
    umock.wait_for(lambda: bed.attr(f"{stick}/{iface}", "authorized") == "1", what="iface")
    host = bed.tb.add_device("scsi", "host0", f"{stick}/{iface}", [], [])
    bed.tb.add_device("block", "sda", host, ["size", "2048"], ["DEVNAME", "/dev/sda", "DEVTYPE", "disk"])
    a.wait_event(lambda e: e["type"] == "usb.storage.detected")

    events = a.events()
    report = check(events)
    assert report.unresolved == []
    assert "usb-blocked" in report.matched()
    titles = report.titles["usb-blocked"]
    assert "USB device blocked on booth-1 (usb.device.blocked, 0781:5567)" in titles
    assert "USB device blocked on booth-1 (usb.interface.blocked, 0b0e:0420)" in titles
    assert "USB device blocked on booth-1 (usb.storage.detected, 090c:1000)" in titles
    assert not [t for t in titles if "-:-" in t]


def test_blocked_stick_shipped_to_a_real_collector_names_the_device_in_the_webhook(
    tmp_path: Path, secret_file_path: Path
) -> None:
    """End to end: the agent ships to a real collector process, whose shipped rule notifies a webhook."""
    from tests.alerts.servers import WebhookReceiver
    from tests.collector.proc import CollectorProcess

    bed = umock.Bed()
    bus = bed.add_bus(1)
    with WebhookReceiver() as hook:
        coll = CollectorProcess(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", secret_file_path)
        coll.config.write_text(
            coll.config.read_text()
            + "\n[alerts]\nthrottle_seconds = 0\n"
            + f'[alerts.channels.hook]\nkind = "webhook"\nurl = "{hook.url}"\n'
        )
        with coll:
            (tmp_path / "agent").mkdir()
            agent = umock.Agent(bed, tmp_path / "agent")
            agent.config.write_text(
                agent.config.read_text().replace('collector_url = ""', f'collector_url = "{coll.url}"')
            )
            done = agent.cli("enroll", "--collector", coll.url, "--secret-file", str(secret_file_path))
            assert done.returncode == 0, done.stderr
            agent.start()
            try:
                bed.plug(bus, "1-1", 0x0781, 0x5567, [d.STORAGE], product=b"Cruzer Blade")
                (got,) = hook.wait_for(1, timeout=60)
            finally:
                agent.stop()
    assert got.body["alert"]["rule"] == "usb-blocked"
    assert got.body["alert"]["data"]["vendor_id"] == "0781"
    assert "(usb.device.blocked, 0781:5567)" in got.body["text"], got.body["text"]
    assert "-:-" not in json.dumps(got.body)


@pytest.fixture
def secret_file_path(tmp_path: Path) -> Path:
    path = tmp_path / "enroll.secret"
    path.write_text("s3cret-enroll\n")
    path.chmod(0o600)
    return path
