"""Interface settling: once a device is allowed, each of its interfaces is authorized and probed, or
deauthorized, by the decision (now, and for interfaces that appear later). A vendor-specific interface is
decided once more by its label, readable only after the device is authorized (it may call itself MTP).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from boothguard import log
from boothguard.events import Draft
from boothguard.usb.inventory import read_facts
from boothguard.usb.policy import decide
from boothguard.usb.report import device_data
from boothguard.usb.rules import RuleSet
from boothguard.usb.settings import UsbSection
from boothguard.usb.sysfs import Sysfs

if TYPE_CHECKING:
    from boothguard.usb.guard import Counters, Tracked

_log = log.get("usb")


class InterfaceSettler:
    def __init__(
        self,
        sysfs: Sysfs,
        counters: Counters,
        emit: Callable[[Draft], None],
        write: Callable[[str, str, str], None],
    ) -> None:
        self.sysfs = sysfs
        self.counters = counters
        self._emit = emit
        self._write = write  # the guard's: a failed write is counted and logged there

    def settle(self, tracked: Tracked, iface: str, settings: UsbSection, rules: RuleSet) -> None:
        """Authorize an allowed interface and ask the kernel to probe it; deauthorize a blocked one."""
        if not settings.per_interface and tracked.decision.verdict == "allow":
            return  # interfaces come up authorized by the bus default
        allowed = iface in tracked.decision.allowed_interfaces
        if allowed and tracked.exception is None and _is_vendor_specific(tracked, iface):
            allowed = self._recheck_label(tracked, iface, settings, rules)
        current = self.sysfs.read_str(tracked.facts.name, f"{iface}/authorized")
        if allowed:
            if iface in tracked.authorized_interfaces and current == "1":
                return
            if current != "1":
                self._write(tracked.facts.name, f"{iface}/authorized", "1")
                try:
                    self.sysfs.probe(iface)
                except OSError as exc:
                    self.counters.write_errors += 1
                    _log.warning("usb_probe_failed", interface=iface, error=str(exc))
            tracked.authorized_interfaces.add(iface)
            self.counters.interfaces_authorized += 1
        elif current != "0":
            self._write(tracked.facts.name, f"{iface}/authorized", "0")
            _log.info("usb_interface_blocked", interface=iface)

    def _recheck_label(self, tracked: Tracked, iface: str, settings: UsbSection, rules: RuleSet) -> bool:
        """A vendor-specific interface may call itself MTP: its string is readable only now."""
        facts = read_facts(self.sysfs, tracked.facts.name, with_labels=True)
        if not facts.interface_labels:
            return True
        decision = decide(facts, rules)
        if iface in decision.allowed_interfaces:
            return True
        tracked.decision = decision
        tracked.facts = facts
        blocked = next(i for i in decision.interfaces if i.name == iface)
        self._emit(
            Draft(
                "usb.interface.blocked",
                "medium",
                device_data(facts, None)
                | {
                    "interface": iface,
                    "interface_classes": list(blocked.classes),
                    "codes": list(blocked.codes),
                    "label": facts.interface_labels.get(iface),
                    "rule": blocked.rule,
                    "mode": settings.mode,
                    "origin": "interface",
                    "enforced": True,
                    "outcome": "blocked",
                },
            )
        )
        return False


def _is_vendor_specific(tracked: Tracked, iface: str) -> bool:
    return any(
        iface == v.name and any(c.startswith("ff/") for c in v.codes) for v in tracked.decision.interfaces
    )
