"""Read what the policy needs about one device from sysfs; nothing here trusts the device."""

from __future__ import annotations

from dataclasses import replace

from boothguard.usb.descriptors import DescriptorError, parse
from boothguard.usb.policy import DeviceFacts
from boothguard.usb.sanitize import clean
from boothguard.usb.sysfs import DESCRIPTORS_LIMIT, Sysfs


def read_facts(sysfs: Sysfs, name: str, with_labels: bool = False, details: bool = True) -> DeviceFacts:
    """`details=False` reads only the descriptors (what every rule may need), so the decision is written
    sooner; `add_rule_strings` adds the strings rules can match, `add_details` everything for the report."""
    raw = sysfs.read(name, "descriptors", DESCRIPTORS_LIMIT)
    descriptors = None
    error: str | None = None
    if raw is None:
        error = "descriptors unreadable"
    else:
        try:
            descriptors = parse(raw)
        except DescriptorError as exc:
            error = str(exc)
    if descriptors is not None:
        vendor, product = f"{descriptors.vendor_id:04x}", f"{descriptors.product_id:04x}"
    else:
        vendor = _hex4(sysfs.read_str(name, "idVendor"))
        product = _hex4(sysfs.read_str(name, "idProduct"))
    labels: dict[str, str] = {}
    if with_labels:
        for iface in sysfs.interfaces(name):
            label = clean(sysfs.read(name, f"{iface}/interface"))
            if label:
                labels[iface] = label
    facts = DeviceFacts(
        name=name,
        vendor_id=vendor,
        product_id=product,
        descriptors=descriptors,
        descriptor_error=error,
        interface_labels=labels,
    )
    return add_details(sysfs, facts) if details else facts


def add_rule_strings(sysfs: Sysfs, facts: DeviceFacts) -> DeviceFacts:
    """The serial and product strings, for rules (and grants) that match on them."""
    name = facts.name
    return replace(
        facts, serial=clean(sysfs.read(name, "serial")), product=clean(sysfs.read(name, "product"))
    )


def add_details(sysfs: Sysfs, facts: DeviceFacts) -> DeviceFacts:
    """Everything the report shows; strings already read for the rules are kept as they were matched."""
    name = facts.name
    return replace(
        facts,
        busnum=sysfs.read_int(name, "busnum"),
        devnum=sysfs.read_int(name, "devnum"),
        serial=facts.serial if facts.serial is not None else clean(sysfs.read(name, "serial")),
        manufacturer=clean(sysfs.read(name, "manufacturer")),
        product=facts.product if facts.product is not None else clean(sysfs.read(name, "product")),
    )


def _hex4(text: str | None) -> str:
    if text and len(text) == 4 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    return "????"
