"""The shipped default rules and compiled rules ready for matching."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from boothguard.usb.classes import ClassSpec, parse_specs
from boothguard.usb.settings import UsbRule, UsbSection

Action = Literal["allow", "block"]

DEFAULT_RULES: tuple[UsbRule, ...] = (
    UsbRule(
        id="block-mass-storage",
        action="block",
        interfaces_any=["mass_storage"],
        comment="USB sticks, card readers, disks",
    ),
    UsbRule(id="block-mtp", action="block", interfaces_any=["mtp"], comment="phones and players (MTP)"),
    UsbRule(
        id="block-still-image",
        action="block",
        interfaces_any=["still_image"],
        comment="cameras and phones (PTP)",
    ),
    UsbRule(
        id="block-tethering",
        action="block",
        interfaces_any=["tethering"],
        comment="phone tethering: RNDIS, CDC ethernet/NCM/EEM/MBIM",
    ),
    UsbRule(id="allow-hubs", action="allow", interfaces_any=["hub"]),
    UsbRule(
        id="allow-hid", action="allow", interfaces_any=["hid"], comment="keyboards, mice, headset buttons"
    ),
    UsbRule(id="allow-audio", action="allow", interfaces_any=["audio"], comment="headsets"),
)
IMPLICIT_RULE = "implicit"
INVALID_RULE = "invalid-descriptors"


@dataclass(frozen=True)
class CompiledRule:
    id: str
    action: Action
    vendor_ids: frozenset[str] | None
    product_ids: frozenset[str] | None
    serials: frozenset[str] | None
    ports: tuple[str, ...] | None
    product_name: str | None
    any_of: tuple[ClassSpec, ...] | None
    all_of: tuple[ClassSpec, ...] | None


def compile_rule(rule: UsbRule) -> CompiledRule:
    return CompiledRule(
        id=rule.id,
        action=rule.action,
        vendor_ids=frozenset(rule.vendor_id) if rule.vendor_id is not None else None,
        product_ids=frozenset(rule.product_id) if rule.product_id is not None else None,
        serials=frozenset(rule.serial) if rule.serial is not None else None,
        ports=tuple(rule.port) if rule.port is not None else None,
        product_name=rule.product_name.lower() if rule.product_name is not None else None,
        any_of=parse_specs(rule.interfaces_any) if rule.interfaces_any is not None else None,
        all_of=parse_specs(rule.interfaces_all) if rule.interfaces_all is not None else None,
    )


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[CompiledRule, ...]
    implicit: Action
    per_interface: bool

    @classmethod
    def from_settings(cls, usb: UsbSection) -> RuleSet:
        rules = list(usb.rules) + (list(DEFAULT_RULES) if usb.default_rules else [])
        return cls(tuple(compile_rule(r) for r in rules), usb.implicit_target, usb.per_interface)

    @property
    def needs_strings(self) -> bool:
        """Whether any rule looks at the serial or product string (else they are read after deciding)."""
        return any(r.serials is not None or r.product_name is not None for r in self.rules)


def identity_matches(
    rule: CompiledRule, *, vendor: str, product: str, serial: str | None, port: str, name: str | None
) -> bool:
    if rule.vendor_ids is not None and vendor not in rule.vendor_ids:
        return False
    if rule.product_ids is not None and product not in rule.product_ids:
        return False
    if rule.serials is not None and (serial is None or serial not in rule.serials):
        return False
    if rule.ports is not None and not any(fnmatchcase(port, p) for p in rule.ports):
        return False
    return rule.product_name is None or (name is not None and fnmatchcase(name.lower(), rule.product_name))
