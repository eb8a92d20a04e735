"""Static contract: every `data.KEY` a shipped alert rule reads (title, `when`, `group_by`) is a key that
every agent call site emitting one of the rule's event types puts into the event's data."""

from __future__ import annotations

import re

from boothguard.collector.alerts.defaults import DEFAULT_RULES
from boothguard.collector.alerts.settings import RuleSpec
from tests.contract.emitted import sites

_DATA = re.compile(r"\{data\.([A-Za-z0-9_\-]+)[^{}]*\}")


def data_keys(spec: RuleSpec) -> set[str]:
    keys = set(_DATA.findall(spec.title))
    for name in [*spec.when, *spec.group_by]:
        if name.startswith("data."):
            keys.add(name.split(".")[1])
    return keys


def agent_types(spec: RuleSpec) -> list[str]:
    """The rule's event types the agent sends (the collector's own findings are `collector.*`)."""
    return [t for t in spec.types if not t.startswith(("!", "collector."))]


def problems(rules: tuple[RuleSpec, ...]) -> list[str]:
    out = []
    for spec in rules:
        keys = data_keys(spec)
        for etype in agent_types(spec):
            assert not set(etype) & set("*?["), f"{spec.id}: list the agent's types, not a pattern"
            found = sites(etype)
            if not found:
                out.append(f"{spec.id}: the agent never emits {etype}")
            for site in found:
                for key in sorted(keys - site.keys):
                    how = "cannot be followed" if site.open else "is not emitted"
                    out.append(f"{spec.id}: data.{key} {how} for {etype} at {site.path}:{site.line}")
    return out


def test_every_data_field_of_every_shipped_rule_is_emitted_by_the_agent() -> None:
    assert problems(DEFAULT_RULES) == []


def test_the_check_sees_a_field_the_agent_never_sends() -> None:
    wrong = RuleSpec(id="old-usb", types=["usb.device.blocked"], title="{host} {data.vid}:{data.pid}")
    assert problems((wrong,)) == [
        "old-usb: data.pid is not emitted for usb.device.blocked at boothguard/usb/report.py:53",
        "old-usb: data.vid is not emitted for usb.device.blocked at boothguard/usb/report.py:53",
    ]
    typo = RuleSpec(id="typo", types=["usb.devices.blocked"], title="{host}")
    assert problems((typo,)) == ["typo: the agent never emits usb.devices.blocked"]


def test_agent_sites_are_found_for_the_shipped_types() -> None:
    # The scan itself: the USB guard's sites are followed through device_data() to the device's ids.
    (site,) = sites("usb.storage.detected")
    assert {"vendor_id", "product_id", "block_device", "port"} <= site.keys
    assert not site.open
