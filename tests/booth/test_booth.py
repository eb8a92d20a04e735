"""One real booth: Debian 12 (debootstrap) booted under QEMU/TCG with systemd, the project's .deb installed
with `apt install` inside it and run by its own maintainer scripts under the shipped unit, the booth's own
udev and logind; USB hot-plugged over QMP. Every scenario runs in ONE boot, in file order.

Asserted on the agent's stored events (its spool, in the guest) and an independent raw-netlink oracle that
records every kernel uevent of the boot.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boothguard.install import deb
from tests.booth import image as bimage
from tests.booth.vm import Booth

pytestmark = [pytest.mark.booth, pytest.mark.slow]
HERE = Path(__file__).resolve().parent
V1, V2 = "0.1.0~booth1", "0.1.0~booth2"
FIGURES: dict[str, Any] = {}


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mkfs.ext4 -d of a root-owned tree)"
    for tool in ("qemu-system-x86_64", "debootstrap", "mkfs.ext4", "busybox", "cpio", "modprobe"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (tests/apt-packages.txt)"
    return None


@pytest.fixture(scope="module")
def booth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booth]:
    if why := _why_not():
        pytest.skip(why)
    t0 = time.monotonic()
    img = bimage.build()
    FIGURES["image_build_s"] = round(img.build_seconds, 1)
    work = tmp_path_factory.mktemp("booth")
    work.chmod(0o755)
    wheel = deb.build_wheel(deb.REPO, work / "wheel")
    staged = deb.stage(work / "stage", wheel)
    for version in (V1, V2):
        built = deb.pack(staged, version, work / "out", "gzip")
        shutil.copy(built, work / f"boothguard_{version.replace('~', '_')}.deb")
    shutil.rmtree(work / "stage")
    shutil.copy(HERE / "driver.py", work / "driver.py")
    shutil.copy(HERE.parent / "qemu" / "guest.py", work / "qguest.py")
    FIGURES["prepare_s"] = round(time.monotonic() - t0, 1)
    vm = Booth(img, work)
    try:
        ready = json.loads(vm.expect("READY", 300))
        FIGURES["boot_to_ready_s"] = round(time.monotonic() - vm.started, 1)
        FIGURES["guest_uptime_at_ready_s"] = ready["uptime"]
        yield vm
        vm.ctl.sendall(b"DONE\n")
        vm.expect("BYE", 60)
        vm.execute("quit")
    finally:
        vm.close()
        print("booth figures:", json.dumps(FIGURES))


def sh(vm: Booth, script: str, timeout: float = 300) -> dict[str, Any]:
    vm.ctl.sendall(b"SH " + json.dumps({"script": script, "timeout": timeout}).encode() + b"\n")
    result: dict[str, Any] = json.loads(vm.expect("RESULT", timeout + 30))
    return result


def ok(vm: Booth, script: str, timeout: float = 300) -> str:
    r = sh(vm, script, timeout)
    assert r["rc"] == 0, f"{script}: {r}"
    return str(r["out"])


def events(vm: Booth) -> list[dict[str, Any]]:
    return list(vm.request("EVENTS")["events"])


def wait_active(vm: Booth) -> None:
    ok(vm, "for i in $(seq 600); do systemctl is-active -q boothguard && exit 0; sleep 0.1; done; exit 1", 90)


def test_apt_install_enables_and_starts_the_agent_under_the_shipped_unit(booth: Booth) -> None:
    t0 = time.monotonic()
    ok(booth, f"apt-get install -y -q --no-install-recommends ./boothguard_{V1.replace('~', '_')}.deb", 600)
    FIGURES["apt_install_s"] = round(time.monotonic() - t0, 1)
    wait_active(booth)
    assert ok(booth, "systemctl is-enabled boothguard").strip() == "enabled"
    unit = ok(booth, "systemctl show -p FragmentPath -p ProtectSystem -p NoNewPrivileges boothguard")
    assert "FragmentPath=/lib/systemd/system/boothguard.service" in unit or "/usr/lib/systemd" in unit, unit
    assert "ProtectSystem=strict" in unit, unit
    assert "NoNewPrivileges=yes" in unit, unit
    # The shipped udev rule and the agent have locked every bus.
    ok(booth, "for b in /sys/bus/usb/devices/usb*; do [ $(cat $b/authorized_default) = 0 ] || exit 1; done")


def test_usb_hotplug_under_the_shipped_unit(booth: Booth) -> None:
    results = {}
    for kind, dev_id in (("kbd", "kbd1"), ("audio", "audio1"), ("stick", "stick1")):
        booth.plug(kind, dev_id)
        results[dev_id] = booth.request(f"CHECK {kind}", 120)
    journal = sh(booth, "journalctl -b -u boothguard -u systemd-udevd --no-pager | tail -80")["out"]
    report = json.dumps(results, indent=1) + "\n" + journal
    for r in results.values():
        assert "error" not in r, report
    kbd = results["kbd1"]
    assert kbd["authorized"] == "1", report
    assert "usbhid" in [i["driver"] for i in kbd["interfaces"].values()], report
    assert any(e["type"] == "usb.device.allowed" for e in kbd["events"]), report
    assert results["audio1"]["authorized"] == "1", report
    stick = results["stick1"]
    assert stick["authorized"] == "0", report
    assert stick["block_adds"] == [], report
    assert stick["dev_sd"] == [], report
    assert any(
        e["type"] == "usb.device.blocked" and e["rule"] == "block-mass-storage" for e in stick["events"]
    )
    assert booth.request("ORACLE")["block_adds"] == [], report


def test_reload_with_a_bad_dropin_is_refused_and_the_old_config_kept(booth: Booth) -> None:
    pid = ok(booth, "systemctl show -p MainPID --value boothguard").strip()
    ok(booth, "printf '[usb]\\nmode = \"sideways\"\\n' > /etc/boothguard/agent.d/90-bad.toml")
    ok(booth, "systemctl reload boothguard")
    deadline = time.monotonic() + 60
    while not any(e["type"] == "agent.config_rejected" for e in events(booth)):
        assert time.monotonic() < deadline, "no agent.config_rejected event"
        time.sleep(0.5)
    assert ok(booth, "systemctl show -p MainPID --value boothguard").strip() == pid
    wait_active(booth)
    ok(booth, "rm /etc/boothguard/agent.d/90-bad.toml")
    # Still enforcing with the old config: a second stick stays blocked.
    booth.plug("stick", "stick2")
    r = booth.request("CHECK stick", 120)
    assert r.get("authorized") == "0", r
    assert r.get("dev_sd") == [], r


def test_apt_upgrade_keeps_config_and_spool(booth: Booth) -> None:
    ok(booth, "printf '\\n# edited by IT\\n' >> /etc/boothguard/agent.toml")
    conf = ok(booth, "sha256sum /etc/boothguard/agent.toml")
    before = events(booth)
    ok(booth, f"apt-get install -y -q ./boothguard_{V2.replace('~', '_')}.deb", 600)
    assert ok(booth, "dpkg-query -W -f='${Version}' boothguard").strip() == V2
    assert ok(booth, "sha256sum /etc/boothguard/agent.toml") == conf
    wait_active(booth)
    after = events(booth)
    # Every event of the old version is still there, unchanged, and seq goes on from it.
    assert after[: len(before)] == before
    assert len(after) > len(before)
    seqs = [e["_seq"] for e in after]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


def test_dpkg_remove_leaves_devices_blocked(booth: Booth) -> None:
    ok(booth, "dpkg -r boothguard", 300)
    assert sh(booth, "systemctl is-active -q boothguard")["rc"] != 0
    booth.plug("stick", "stick3")
    r = booth.request("CHECK stick", 120)
    assert r.get("authorized") == "0", r
    assert r.get("dev_sd") == [], r
    assert booth.request("ORACLE")["block_adds"] == []
