"""USB authorization: sysfs writable, bus defaults, usbcore parameter, uevent source, udev rule."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from boothguard.install import layout
from boothguard.install.doctor.model import Check, Probe

_BUS = re.compile(r"^usb\d+$")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def checks(probe: Probe) -> Iterator[Check]:
    usb = probe.config.usb
    sysfs = usb.sysfs_root
    devices = sysfs / "bus" / "usb" / "devices"
    if usb.mode == "off":
        yield Check("usb", "warn", 'usb.mode = "off": USB devices are neither controlled nor reported', "")
        return
    if not devices.is_dir():
        yield Check(
            "usb",
            "fail",
            f"no {sysfs}/bus/usb: this machine has no USB subsystem the agent can control (container or VM?)",
            "run the agent on the booth PC itself, with /sys mounted read-write for root",
        )
        return
    buses = sorted(p.name for p in devices.iterdir() if _BUS.match(p.name))
    if not buses:
        yield Check("usb", "warn", f"{devices} has no USB bus (no host controller)", "")
        return
    not_writable = [b for b in buses if not os.access(devices / b / "authorized_default", os.W_OK)]
    if not_writable:
        yield Check(
            "usb",
            "fail",
            f"authorized_default not writable on {', '.join(not_writable)}: the agent cannot block devices",
            "run the agent as root (boothguard.service) on a kernel with USB authorization",
            {"buses": buses},
        )
        return
    defaults = {b: _read(devices / b / "authorized_default") for b in buses}
    open_buses = [b for b, v in defaults.items() if v not in ("0",)]
    facts = {"buses": buses, "authorized_default": defaults, "mode": usb.mode}
    if usb.mode == "enforce" and open_buses:
        yield Check(
            "usb",
            "warn",
            f"{len(buses)} bus(es); authorized_default is not 0 on {', '.join(open_buses)} "
            "(the agent sets it when it runs)",
            "start the agent; check the udev rule",
            facts,
        )
    else:
        yield Check(
            "usb", "ok", f"{len(buses)} bus(es), USB authorization writable; mode {usb.mode}", "", facts
        )
    yield from _kernel_default(sysfs)
    yield from _uevents(probe)


def _kernel_default(sysfs: Path) -> Iterator[Check]:
    value = _read(sysfs / "module" / "usbcore" / "parameters" / "authorized_default")
    if value is None:
        return
    if value == "0":
        yield Check(
            "usb boot", "ok", "usbcore.authorized_default=0: devices attached at power-on stay off too"
        )
    else:
        yield Check(
            "usb boot",
            "warn",
            f"usbcore.authorized_default={value}: devices attached at power-on bind before the agent starts "
            "(the agent re-decides them, but a driver may already have seen them)",
            "add usbcore.authorized_default=0 to GRUB_CMDLINE_LINUX and run update-grub",
        )


def _uevents(probe: Probe) -> Iterator[Check]:
    source = probe.config.usb.uevent_source
    udevd = probe.path("/run/udev/control").exists()
    rule = any(
        probe.path(p).exists()
        for p in (layout.UDEV_RULE, "/usr" + layout.UDEV_RULE, "/etc/udev/rules.d/70-boothguard.rules")
    )
    if source == "udev" and not udevd:
        yield Check(
            "uevents",
            "fail",
            'usb.uevent_source = "udev" but udevd is not running: the agent will not see insertions',
            'start systemd-udevd, or set usb.uevent_source = "kernel"',
        )
    elif not rule:
        yield Check(
            "uevents",
            "warn",
            f"uevents from {source}; the udev rule that closes new buses is not installed",
            "install the .deb or run `boothguard install`",
        )
    else:
        yield Check("uevents", "ok", f"uevents from {source}; udev rule installed")
