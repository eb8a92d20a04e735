"""Decide a device: each interface (every alternate setting) against the first-match rules, then the device.

Pure: facts in, decision out — `usb list`, the guard and the tests share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from boothguard.usb.classes import ClassSpec, class_code, class_name
from boothguard.usb.descriptors import AltSetting, Descriptors
from boothguard.usb.rules import INVALID_RULE, Action, CompiledRule, RuleSet, identity_matches

Verdict = Literal["allow", "block", "partial"]


@dataclass(frozen=True)
class DeviceFacts:
    """What the agent knows about a device; strings already sanitized."""

    name: str  # sysfs name, which is the port path: "1-2.3"
    vendor_id: str
    product_id: str
    busnum: int | None = None
    devnum: int | None = None
    serial: str | None = None
    manufacturer: str | None = None
    product: str | None = None
    descriptors: Descriptors | None = None
    descriptor_error: str | None = None
    # Interface strings (iInterface), known only once the device is authorized and its interfaces exist.
    interface_labels: Mapping[str, str] = field(default_factory=dict)

    def interface_name(self, config: int, number: int) -> str:
        return f"{self.name}:{config}.{number}"


@dataclass(frozen=True)
class InterfaceVerdict:
    name: str
    classes: tuple[str, ...]
    codes: tuple[str, ...]
    action: Action
    rule: str


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    rule: str
    interfaces: tuple[InterfaceVerdict, ...]
    reason: str | None = None

    @property
    def device_allowed(self) -> bool:
        return self.verdict != "block"

    @property
    def allowed_interfaces(self) -> frozenset[str]:
        return frozenset(i.name for i in self.interfaces if i.action == "allow")

    @property
    def blocked_interfaces(self) -> tuple[InterfaceVerdict, ...]:
        return tuple(i for i in self.interfaces if i.action == "block")

    def interface_classes(self) -> list[str]:
        return sorted({c for i in self.interfaces for c in i.classes})


def decide(facts: DeviceFacts, rules: RuleSet) -> Decision:
    if facts.descriptors is None:
        why = facts.descriptor_error or "no descriptors"
        return Decision("block", INVALID_RULE, (), reason=why)
    candidates = [
        r
        for r in rules.rules
        if identity_matches(
            r,
            vendor=facts.vendor_id,
            product=facts.product_id,
            serial=facts.serial,
            port=facts.name,
            name=facts.product,
        )
    ]
    alts = facts.descriptors.alt_settings
    if not alts:
        action, rule = _first(
            candidates, alt=None, label=None, alts=alts, facts=facts, implicit=rules.implicit
        )
        return Decision("allow" if action == "allow" else "block", rule, (), reason="no interfaces")
    verdicts = []
    for config, number in facts.descriptors.interface_keys():
        own = [a for a in alts if a.config == config and a.number == number]
        verdicts.append(_interface(facts, candidates, own, alts, rules.implicit))
    return _combine(tuple(verdicts), rules.per_interface)


def _label(facts: DeviceFacts, alt: AltSetting) -> str | None:
    return facts.interface_labels.get(facts.interface_name(alt.config, alt.number))


def _first(
    candidates: list[CompiledRule],
    *,
    alt: AltSetting | None,
    label: str | None,
    alts: tuple[AltSetting, ...],
    facts: DeviceFacts,
    implicit: Action,
) -> tuple[Action, str]:
    for r in candidates:
        if r.any_of is not None and (alt is None or not _any_spec(r.any_of, alt, label)):
            continue
        if r.all_of is not None and (
            not alts or not all(_any_spec(r.all_of, a, _label(facts, a)) for a in alts)
        ):
            continue
        return r.action, r.id
    return implicit, "implicit"


def _any_spec(specs: tuple[ClassSpec, ...], alt: AltSetting, label: str | None) -> bool:
    return any(spec.matches(alt.cls, alt.subclass, alt.protocol, label) for spec in specs)


def _interface(
    facts: DeviceFacts,
    candidates: list[CompiledRule],
    own: list[AltSetting],
    alts: tuple[AltSetting, ...],
    implicit: Action,
) -> InterfaceVerdict:
    """An interface is allowed only if every one of its alternate settings is."""
    results = [
        _first(candidates, alt=a, label=_label(facts, a), alts=alts, facts=facts, implicit=implicit)
        for a in own
    ]
    blocked = [r for r in results if r[0] == "block"]
    action, rule = blocked[0] if blocked else results[0]
    return InterfaceVerdict(
        name=facts.interface_name(own[0].config, own[0].number),
        classes=tuple(dict.fromkeys(class_name(a.cls, a.subclass, a.protocol) for a in own)),
        codes=tuple(dict.fromkeys(class_code(a.cls, a.subclass, a.protocol) for a in own)),
        action=action,
        rule=rule,
    )


def _combine(verdicts: tuple[InterfaceVerdict, ...], per_interface: bool) -> Decision:
    blocked = [v for v in verdicts if v.action == "block"]
    if not blocked:
        return Decision("allow", verdicts[0].rule, verdicts)
    if len(blocked) == len(verdicts):
        return Decision("block", blocked[0].rule, verdicts)
    if per_interface:
        return Decision("partial", blocked[0].rule, verdicts, reason="some interfaces blocked")
    return Decision("block", blocked[0].rule, verdicts, reason="an interface is blocked (per_interface off)")
