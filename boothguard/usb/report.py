"""Event drafts for USB decisions: what was decided, by which rule, in which mode."""

from __future__ import annotations

from typing import Any

from boothguard.events import Draft, Severity
from boothguard.usb.policy import Decision, DeviceFacts


def device_data(facts: DeviceFacts, decision: Decision | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "vendor_id": facts.vendor_id,
        "product_id": facts.product_id,
        "serial": facts.serial,
        "manufacturer": facts.manufacturer,
        "product": facts.product,
        "bus": facts.busnum,
        "port": facts.name,
    }
    if decision is not None:
        data |= {
            "verdict": decision.verdict,
            "rule": decision.rule,
            "reason": decision.reason,
            "interface_classes": decision.interface_classes(),
            "interfaces": [
                {
                    "name": i.name,
                    "classes": list(i.classes),
                    "codes": list(i.codes),
                    "action": i.action,
                    "rule": i.rule,
                }
                for i in decision.interfaces
            ],
        }
    return data


def decision_drafts(
    facts: DeviceFacts, decision: Decision, *, mode: str, origin: str, rule: str | None = None
) -> list[Draft]:
    """usb.device.allowed/blocked, plus usb.interface.blocked for each interface blocked in an allowed
    device. `rule` overrides the decision's rule (present-device policies `block`/`allow`/`keep`)."""
    enforced = mode == "enforce"
    base = device_data(facts, decision) | {"mode": mode, "origin": origin, "enforced": enforced}
    if rule is not None:
        base["rule"] = rule
    if not decision.device_allowed:
        outcome = "blocked" if enforced else "would_block"
        severity: Severity = "medium" if enforced else "low"
        return [Draft("usb.device.blocked", severity, base | {"outcome": outcome})]
    drafts = [Draft("usb.device.allowed", "info", base | {"outcome": "allowed"})]
    for iface in decision.blocked_interfaces:
        drafts.append(
            Draft(
                "usb.interface.blocked",
                "medium" if enforced else "low",
                device_data(facts, None)
                | {
                    "interface": iface.name,
                    "interface_classes": list(iface.classes),
                    "codes": list(iface.codes),
                    "rule": iface.rule,
                    "mode": mode,
                    "origin": origin,
                    "enforced": enforced,
                    "outcome": "blocked" if enforced else "would_block",
                },
            )
        )
    return drafts
