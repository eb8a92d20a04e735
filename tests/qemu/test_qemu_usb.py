"""The USB guard on a real Linux kernel (QEMU, TCG): hot-plugged stick, keyboard and headset.

The guest runs the full agent daemon from this checkout (`python -m boothguard agent`, kernel uevent source)
and an independent raw-netlink oracle. Asserted: the stick never yields a block device (no `block` add
uevent, ever, no /dev/sd*), the keyboard binds usbhid, audio is authorized; a composite case blocks only
some interfaces; and the reactive design (buses open, revoke 0.2 s later) loses — the oracle sees `sd*`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.qemu import image as qimage
from tests.qemu.qemu import Guest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (9p passthrough of / and sysfs writes in the guest)"
    for tool in ("qemu-system-x86_64", "busybox", "apt-get", "dpkg", "cpio", "depmod", "modprobe"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (tests/apt-packages.txt)"
    if str(REPO).startswith(("/tmp/", "/run/")):
        return "the guest mounts tmpfs over /tmp and /run; the checkout must live elsewhere"
    return None


@pytest.fixture(scope="module")
def image() -> qimage.Image:
    if why := _why_not():
        pytest.skip(why)
    try:
        return qimage.build(REPO, Path(sys.executable))
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        pytest.fail(f"cannot build the guest image: {exc}")


def test_real_kernel_blocks_storage_before_any_driver_binds(image: qimage.Image, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    guest = Guest(image, tmp_path)
    results: dict[str, dict[str, object]] = {}
    try:
        guest.expect("READY", 120)
        for kind, dev_id in (("kbd", "kbd1"), ("audio", "audio1"), ("stick", "stick1")):
            guest.plug(kind, dev_id)
            results[dev_id] = guest.request(f"CHECK {kind}")
        guest.request("PHASE per_interface")
        guest.plug("audio", "audio2")
        results["audio2"] = guest.request("CHECK audio")
        guest.plug("stick", "stick2")
        results["stick2"] = guest.request("CHECK stick")
        guest.request("PHASE reactive")
        guest.plug("stick", "stick3")
        results["reactive"] = guest.request("CHECK stick")
        guest.ctl.sendall(b"DONE\n")
        guest.expect("BYE", 60)
    finally:
        guest.close()
    report = json.dumps(results, indent=1)
    for r in results.values():
        assert "error" not in r, report

    kbd = results["kbd1"]
    assert kbd["authorized"] == "1", report
    assert "usbhid" in [i["driver"] for i in kbd["interfaces"].values()], report  # type: ignore[attr-defined]
    assert any(e["type"] == "usb.device.allowed" and e["rule"] == "allow-hid" for e in kbd["events"]), report  # type: ignore[attr-defined]

    audio = results["audio1"]
    assert audio["authorized"] == "1", report
    assert all(i["authorized"] == "1" for i in audio["interfaces"].values()), report  # type: ignore[attr-defined]

    for stick in (results["stick1"], results["stick2"]):
        assert stick["authorized"] == "0", report
        assert stick["block_adds"] == [], report
        assert stick["dev_sd"] == [], report
        assert stick["interfaces"] == {}, report
        assert any(
            e["type"] == "usb.device.blocked" and e["rule"] == "block-mass-storage" for e in stick["events"]
        ), report  # type: ignore[attr-defined]

    # Composite: the device and its control interface are authorized, the streaming interfaces are not.
    audio2 = results["audio2"]
    ifaces = audio2["interfaces"]
    assert audio2["authorized"] == "1", report
    states = [v["authorized"] for k, v in sorted(ifaces.items())]  # type: ignore[attr-defined]
    assert states[0] == "1", report
    assert len(states) >= 2, report
    assert set(states[1:]) == {"0"}, report
    assert all(v["driver"] is None for k, v in ifaces.items() if v["authorized"] == "0"), report  # type: ignore[attr-defined]
    blocked = [e for e in audio2["events"] if e["type"] == "usb.interface.blocked"]  # type: ignore[attr-defined]
    assert len(blocked) == len(states) - 1, report
    assert {e["rule"] for e in blocked} == {"no-audio-streaming"}, report

    # The oracle can fail: reacting 0.2 s after the fact, a block device appears.
    assert results["reactive"]["block_adds"], report

    # Across the whole run, the only sd* block devices the kernel ever added came in the reactive phase.
    oracle = json.loads((tmp_path / "oracle.json").read_text())
    sd_adds = [
        e
        for e in oracle
        if e.get("SUBSYSTEM") == "block"
        and e.get("ACTION") == "add"
        and e.get("DEVNAME", "").startswith("sd")
    ]
    assert len(sd_adds) == len(results["reactive"]["block_adds"]), report  # type: ignore[arg-type]
