"""The `[usb]` section: mode, uevent source, present-device policy and the first-match rule list."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from boothguard.section import Section
from boothguard.usb.classes import parse_spec

_HEX4 = re.compile(r"^[0-9a-fA-F]{4}$")


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _hex_ids(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    for v in values:
        if not _HEX4.match(v):
            raise ValueError(f"{v!r} is not a 4-digit hex id like '0b0e'")
    return [v.lower() for v in values]


StrList = Annotated[list[str] | None, BeforeValidator(_as_list)]


class UsbRule(Section):
    """One rule: every condition given must hold; an omitted condition matches anything.

    `interfaces_any` holds per interface (the interface's class is one of these): a block rule then
    blocks just those interfaces of a composite device. `interfaces_all` holds per device (every interface
    of the device is one of these).
    """

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")  # \Z: no trailing newline (python-re)
    action: Literal["allow", "block"]
    vendor_id: StrList = None
    product_id: StrList = None
    serial: StrList = None
    interfaces_any: StrList = None
    interfaces_all: StrList = None
    port: StrList = None  # glob on the port path, e.g. "1-2*" (bus 1, port 2 and behind it)
    product_name: str | None = None  # case-insensitive glob on the product string
    comment: str = ""

    @field_validator("vendor_id", "product_id")
    @classmethod
    def _ids(cls, v: list[str] | None) -> list[str] | None:
        return _hex_ids(v)

    @field_validator("interfaces_any", "interfaces_all")
    @classmethod
    def _classes(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        if not v:
            raise ValueError("empty list matches nothing; omit the key instead")
        for item in v:
            parse_spec(item)
        return [item.strip().lower() for item in v]


class UsbSection(Section):
    mode: Literal["enforce", "audit", "off"] = "enforce"
    # Where uevents come from: "udev" (udevd's processed events) or "kernel" (raw netlink; no udevd needed).
    uevent_source: Literal["udev", "kernel"] = "udev"
    sysfs_root: Path = Path("/sys")
    # Devices present when the agent starts: apply the rules, keep them as they are, block or allow all.
    present_policy: Literal["apply", "keep", "block", "allow"] = "apply"
    # Block only the offending interfaces of an otherwise allowed composite device. Sets
    # interface_authorized_default=0 on every bus, so the agent authorizes each allowed interface itself.
    # Off: a device with any blocked interface is blocked whole.
    per_interface: bool = True
    implicit_target: Literal["allow", "block"] = "block"
    # Your rules come first; then, unless disabled, the shipped defaults (see config/agent.toml).
    rules: list[UsbRule] = Field(default_factory=list)
    default_rules: bool = True
    # Any block device on USB appearing in enforce mode: usb.storage.detected and its device deauthorized.
    # Turn off only if your own rules allow some storage devices.
    storage_safety_net: bool = True

    @model_validator(mode="after")
    def _unique_ids(self) -> UsbSection:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self
