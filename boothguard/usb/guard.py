"""The USB guard: locks the buses, decides each device and writes `authorized` — allowed devices only (their
interfaces: `settle.py`).

Synchronous and fast on purpose: it runs inside the uevent callback, so a decision is written before the
next event is read. Events go to `emit` (a non-blocking sink; the plugin counts what it cannot queue).
Stopping never re-authorizes anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boothguard import log
from boothguard.events import Draft
from boothguard.usb.inventory import add_details, add_rule_strings, read_facts
from boothguard.usb.policy import Decision, DeviceFacts, decide
from boothguard.usb.report import decision_drafts, device_data
from boothguard.usb.rules import RuleSet
from boothguard.usb.settings import UsbSection
from boothguard.usb.settle import InterfaceSettler
from boothguard.usb.sysfs import BUS_NAME, DEVICE_NAME, INTERFACE_NAME, Sysfs, usb_device_of

if TYPE_CHECKING:
    from boothguard.usb.exceptions import UsbExceptions

_log = log.get("usb")
MAX_TRACKED = 4096


@dataclass(frozen=True)
class Uevent:
    action: str
    subsystem: str
    devtype: str | None
    name: str
    devpath: str
    received: float = 0.0  # monotonic time the agent read it


@dataclass
class Tracked:
    facts: DeviceFacts
    decision: Decision
    allowed: bool  # authorized by us (or, in audit/keep, left authorized)
    authorized_interfaces: set[str] = field(default_factory=set)
    exception: str | None = None  # the temporary exception (grant id) that let it through


@dataclass
class Counters:
    decisions: int = 0
    blocked: int = 0
    allowed: int = 0
    interfaces_authorized: int = 0
    storage_detected: int = 0
    write_errors: int = 0
    handler_errors: int = 0
    last_latency_ms: float | None = None  # uevent read -> `authorized` written, last inserted device


class UsbGuard:
    def __init__(
        self,
        sysfs: Sysfs,
        settings: UsbSection,
        emit: Callable[[Draft], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sysfs = sysfs
        self.settings = settings
        self.rules = RuleSet.from_settings(settings)
        self._needs_strings = self.rules.needs_strings
        self._emit = emit
        self._clock = clock
        self.tracked: dict[str, Tracked] = {}
        self.counters = Counters()
        self.settler = InterfaceSettler(sysfs, self.counters, emit, self._write)
        self.exceptions: UsbExceptions | None = None  # set by the plugin

    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def enforcing(self) -> bool:
        return self.settings.mode == "enforce"

    # -- start / reload ---------------------------------------------------------------------------------

    def lock_buses(self) -> None:
        """New devices arrive unauthorized (and, for per-interface control, so do their interfaces)."""
        if not self.enforcing:
            return
        for bus in self.sysfs.buses():
            self._lock_bus(bus)

    def _lock_bus(self, bus: str) -> None:
        self._write(bus, "authorized_default", "0")
        if self.settings.per_interface:
            self._write(bus, "interface_authorized_default", "0")
        _log.info("usb_bus_locked", bus=bus, per_interface=self.settings.per_interface)

    def apply_present(self) -> None:
        """Decide every device present now, by `present_policy`."""
        if self.mode == "off":
            return
        for name in self.sysfs.devices():
            self._guarded(self._present, name)

    def reconfigure(self, settings: UsbSection) -> None:
        self.settings = settings
        self.rules = RuleSet.from_settings(settings)
        self._needs_strings = self.rules.needs_strings
        self.tracked.clear()
        self.lock_buses()
        self.apply_present()

    # -- uevents ----------------------------------------------------------------------------------------

    def on_uevent(self, ev: Uevent) -> None:
        if self.mode == "off":
            return
        self._guarded(self._dispatch, ev)

    def _dispatch(self, ev: Uevent) -> None:
        if ev.subsystem == "block":
            if ev.action == "add":
                self._block_device(ev)
            return
        if ev.subsystem != "usb":
            return
        if ev.devtype == "usb_device" or DEVICE_NAME.match(ev.name) or BUS_NAME.match(ev.name):
            if ev.action == "add":
                if BUS_NAME.match(ev.name):
                    if self.enforcing:
                        self._lock_bus(ev.name)
                elif ev.name not in self.tracked:
                    self._inserted(ev.name, ev.received)
            elif ev.action == "remove":
                self._removed(ev.name)
        elif ev.action == "add" and (ev.devtype == "usb_interface" or INTERFACE_NAME.match(ev.name)):
            self._interface_added(ev.name)

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # one odd device must never stop the guard
            self.counters.handler_errors += 1
            _log.exception("usb_handler_failed", args=[str(a)[:200] for a in args])

    # -- decisions --------------------------------------------------------------------------------------

    def _inserted(self, name: str, received: float) -> None:
        # The decision path: read only what the rules need, decide, write `authorized`. Everything else
        # (the strings for the report, logs, events) comes after the write.
        facts = read_facts(self.sysfs, name, details=False)
        if self._needs_strings:
            facts = add_rule_strings(self.sysfs, facts)
        decision = decide(facts, self.rules)
        if self.exceptions is not None and self.exceptions.on_device(facts, decision, "inserted"):
            return
        written = self._apply(facts, decision, allow=decision.device_allowed, origin="inserted")
        if received and written is not None:
            self.counters.last_latency_ms = (written - received) * 1000
        facts = add_details(self.sysfs, facts)
        self.tracked[name].facts = facts
        self._report(facts, decision, origin="inserted")

    def _present(self, name: str) -> None:
        facts = read_facts(self.sysfs, name, with_labels=True)
        decision = decide(facts, self.rules)
        if self.exceptions is not None and self.exceptions.on_device(facts, decision, "present"):
            return
        policy = self.settings.present_policy
        if policy == "apply":
            self._apply(facts, decision, allow=decision.device_allowed, origin="present")
            self._report(facts, decision, origin="present")
            return
        if policy == "keep":
            allowed = self.sysfs.read_str(name, "authorized") == "1"
            self.tracked[name] = Tracked(facts, decision, allowed)
            self._report_forced(facts, decision, allowed, "present-keep")
            return
        allow = policy == "allow"
        self._apply(facts, decision, allow=allow, origin="present", all_interfaces=allow)
        self._report_forced(facts, decision, allow, f"present-{policy}")

    def _apply(
        self,
        facts: DeviceFacts,
        decision: Decision,
        *,
        allow: bool,
        origin: str,
        all_interfaces: bool = False,
        exception: str | None = None,
    ) -> float | None:
        """Track and (when enforcing) write the device's `authorized`; returns the clock right after the
        write, None when nothing was written."""
        tracked = Tracked(facts, decision, allow, exception=exception)
        if all_interfaces:
            tracked.decision = Decision(
                "allow",
                decision.rule,
                tuple(type(i)(i.name, i.classes, i.codes, "allow", i.rule) for i in decision.interfaces),
            )
        self._track(facts.name, tracked)
        if not self.enforcing:
            return None
        self._write(facts.name, "authorized", "1" if allow else "0")
        written = self._clock()  # the decision is in force; logging and the rest come after
        if not allow:
            _log.info(
                "usb_device_blocked",
                port=facts.name,
                vid=facts.vendor_id,
                pid=facts.product_id,
                rule=decision.rule,
                origin=origin,
                mono=written,
            )
            return written
        _log.info(
            "usb_device_allowed",
            port=facts.name,
            vid=facts.vendor_id,
            pid=facts.product_id,
            rule=decision.rule,
            verdict=decision.verdict,
            origin=origin,
            mono=written,
        )
        for iface in self.sysfs.interfaces(facts.name):
            self.settler.settle(tracked, iface, self.settings, self.rules)
        return written

    def _interface_added(self, iface: str) -> None:
        m = INTERFACE_NAME.match(iface)
        if not m:
            return
        tracked = self.tracked.get(m.group(1))
        if tracked is None or not tracked.allowed or not self.enforcing:
            return
        self.settler.settle(tracked, iface, self.settings, self.rules)

    def _removed(self, name: str) -> None:
        tracked = self.tracked.pop(name, None)
        data: dict[str, Any] = {"port": name, "mode": self.mode}
        if tracked is not None:
            data = device_data(tracked.facts, None) | {
                "mode": self.mode,
                "verdict": tracked.decision.verdict,
                "rule": tracked.decision.rule,
                "interface_classes": tracked.decision.interface_classes(),
            }
        self._emit(Draft("usb.device.removed", "info", data))
        if self.exceptions is not None:
            self.exceptions.on_removed(name)

    def _block_device(self, ev: Uevent) -> None:
        """Safety net: a block device under a USB device in enforce mode should never exist."""
        if not self.enforcing or not self.settings.storage_safety_net:
            return
        device = usb_device_of(ev.devpath)
        if device is None:
            return
        self.counters.storage_detected += 1
        tracked = self.tracked.get(device)
        excepted = tracked is not None and tracked.exception is not None
        if not excepted:  # IT let this one through on purpose (usb.exception.used says who)
            self._write(device, "authorized", "0")
        if tracked is not None and not excepted:
            tracked.allowed = False
        facts = tracked.facts if tracked else read_facts(self.sysfs, device)
        _log.critical("usb_storage_detected", port=device, block=ev.name)
        self._emit(
            Draft(
                "usb.storage.detected",
                "critical",
                device_data(facts, None)
                | {
                    "block_device": ev.name[:64],
                    "devpath": ev.devpath[:512],
                    "mode": self.mode,
                    "action": "kept_by_exception" if excepted else "deauthorized",
                    "exception": tracked.exception if tracked else None,
                    "rule": tracked.decision.rule if tracked else None,
                },
            )
        )

    # -- temporary exceptions (boothguard.usb.exceptions) -------------------------------------------------

    def present_facts(self, match: Callable[[DeviceFacts], bool]) -> list[tuple[DeviceFacts, Decision]]:
        out = []
        for name in self.sysfs.devices():
            facts = read_facts(self.sysfs, name, with_labels=True)
            if match(facts):
                out.append((facts, decide(facts, self.rules)))
        return out

    def authorize_excepted(self, facts: DeviceFacts, decision: Decision, grant_id: str) -> DeviceFacts:
        """Authorize the device and every interface, whatever the rules say; returns the facts completed
        (strings read after the write) for the report."""
        self._apply(facts, decision, allow=True, origin="exception", all_interfaces=True, exception=grant_id)
        if facts.busnum is None:  # an inserted device: only what the decision needed was read
            facts = add_details(self.sysfs, facts)
            if (tracked := self.tracked.get(facts.name)) is not None:
                tracked.facts = facts
        return facts

    def block_again(self, name: str) -> bool:
        """An exception ended: deauthorize, then apply the rules as for a new device. False if gone."""
        if self.sysfs.read_str(name, "authorized") is None:
            self.tracked.pop(name, None)
            return False
        tracked = self.tracked.get(name)
        if tracked is not None and tracked.exception is None and not tracked.allowed:
            return True  # already blocked (e.g. by the present-device policy after a restart)
        if self.enforcing:
            self._write(name, "authorized", "0")
        facts = read_facts(self.sysfs, name, with_labels=True)
        decision = decide(facts, self.rules)
        self._apply(facts, decision, allow=decision.device_allowed, origin="exception_ended")
        self._report(facts, decision, origin="exception_ended")
        return True

    # -- helpers ----------------------------------------------------------------------------------------

    def _track(self, name: str, tracked: Tracked) -> None:
        if name not in self.tracked and len(self.tracked) >= MAX_TRACKED:
            self.tracked.pop(next(iter(self.tracked)))
        self.tracked[name] = tracked
        self.counters.decisions += 1
        if tracked.allowed:
            self.counters.allowed += 1
        else:
            self.counters.blocked += 1

    def _write(self, name: str, attr: str, value: str) -> None:
        try:
            self.sysfs.write(name, attr, value)
        except OSError as exc:
            self.counters.write_errors += 1
            _log.warning("usb_write_failed", device=name, attr=attr, value=value, error=str(exc))

    def _report(self, facts: DeviceFacts, decision: Decision, origin: str) -> None:
        for draft in decision_drafts(facts, decision, mode=self.mode, origin=origin):
            self._emit(draft)

    def _report_forced(self, facts: DeviceFacts, decision: Decision, allowed: bool, rule: str) -> None:
        forced = Decision("allow" if allowed else "block", rule, decision.interfaces, reason="present_policy")
        drafts = decision_drafts(facts, forced, mode=self.mode, origin="present", rule=rule)
        for draft in drafts[:1]:
            self._emit(draft)

    def status(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "uevent_source": self.settings.uevent_source,
            "present_policy": self.settings.present_policy,
            "counters": vars(self.counters).copy(),
            "devices": [
                {
                    "port": name,
                    "vendor_id": t.facts.vendor_id,
                    "product_id": t.facts.product_id,
                    "product": t.facts.product,
                    "verdict": t.decision.verdict,
                    "rule": t.decision.rule,
                    "authorized": t.allowed,
                    "exception": t.exception,
                    "interface_classes": t.decision.interface_classes(),
                }
                for name, t in self.tracked.items()
            ],
        }
