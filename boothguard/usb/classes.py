"""USB interface class names used in rules, and how a (class, subclass, protocol) triple matches them.

A name stands for one or more triples (``None`` = any value). Rules may also give raw hex specs:
``"08"``, ``"e0:01"``, ``"e0:01:03"`` (``*`` for any part).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

Triple = tuple[int | None, int | None, int | None]

# Base classes (usb.org "Defined Class Codes").
BASE: dict[str, int] = {
    "audio": 0x01,
    "comm": 0x02,  # CDC control: ACM modems, ECM/NCM/EEM/MBIM networking, RNDIS-over-ACM
    "hid": 0x03,
    "physical": 0x05,
    "still_image": 0x06,  # PTP cameras and phones (MTP advertises itself here too)
    "printer": 0x07,
    "mass_storage": 0x08,
    "hub": 0x09,
    "cdc_data": 0x0A,
    "smart_card": 0x0B,
    "content_security": 0x0D,
    "video": 0x0E,
    "personal_healthcare": 0x0F,
    "audio_video": 0x10,
    "billboard": 0x11,
    "usb_c_bridge": 0x12,
    "diagnostic": 0xDC,
    "wireless": 0xE0,  # Bluetooth, RNDIS (e0/01/03)
    "misc": 0xEF,
    "application_specific": 0xFE,
    "vendor_specific": 0xFF,
}

# Narrower names, several triples each.
SPECIFIC: dict[str, tuple[Triple, ...]] = {
    "rndis": ((0xE0, 0x01, 0x03), (0x02, 0x02, 0xFF), (0xEF, 0x04, 0x01)),
    "cdc_ether": ((0x02, 0x06, None),),
    "cdc_eem": ((0x02, 0x0C, None),),
    "cdc_ncm": ((0x02, 0x0D, None),),
    "cdc_mbim": ((0x02, 0x0E, None),),
    "bluetooth": ((0xE0, 0x01, 0x01),),
}
SPECIFIC["tethering"] = tuple(
    t for n in ("rndis", "cdc_ether", "cdc_eem", "cdc_ncm", "cdc_mbim") for t in SPECIFIC[n]
)

# MTP: still image 06/01/01, or a vendor-specific interface whose string says "MTP" (only readable once the
# device is authorized and its interfaces exist).
MTP_TRIPLES: tuple[Triple, ...] = ((0x06, 0x01, 0x01),)
MTP_STRING = re.compile(r"\bMTP\b", re.IGNORECASE)

NAMES: frozenset[str] = frozenset(BASE) | frozenset(SPECIFIC) | {"mtp"}
_HEX = re.compile(r"^([0-9a-fA-F]{2}|\*)(?::([0-9a-fA-F]{2}|\*))?(?::([0-9a-fA-F]{2}|\*))?$")
_BY_CODE = {code: name for name, code in BASE.items()}


@dataclass(frozen=True)
class ClassSpec:
    """One rule entry: a name or a hex spec, compiled to triples."""

    text: str
    triples: tuple[Triple, ...]
    mtp: bool = False

    def matches(self, cls: int, sub: int, proto: int, label: str | None = None) -> bool:
        if self.mtp and cls == 0xFF and label is not None and MTP_STRING.search(label):
            return True
        for c, s, p in self.triples:  # a plain loop: this runs before `authorized` is written
            if (c is None or c == cls) and (s is None or s == sub) and (p is None or p == proto):
                return True
        return False


def _triple_matches(t: Triple, cls: int, sub: int, proto: int) -> bool:
    c, s, p = t
    return (c is None or c == cls) and (s is None or s == sub) and (p is None or p == proto)


def parse_spec(text: str) -> ClassSpec:
    """Raise ValueError for an unknown name or a malformed hex spec."""
    name = text.strip().lower()
    if name in BASE:
        return ClassSpec(name, ((BASE[name], None, None),))
    if name in SPECIFIC:
        return ClassSpec(name, SPECIFIC[name])
    if name == "mtp":
        return ClassSpec(name, MTP_TRIPLES, mtp=True)
    if m := _HEX.match(name):
        parts = [None if p in (None, "*") else int(p, 16) for p in m.groups()]
        return ClassSpec(name, ((parts[0], parts[1], parts[2]),))
    known = ", ".join(sorted(NAMES))
    raise ValueError(f"unknown interface class {text!r}: use one of {known}, or hex like 08 or e0:01:03")


def parse_specs(texts: Iterable[str]) -> tuple[ClassSpec, ...]:
    return tuple(parse_spec(t) for t in texts)


@lru_cache(maxsize=1024)  # pure, on at most 2**24 triples; real devices use a handful
def class_name(cls: int, sub: int, proto: int) -> str:
    """A readable name for a triple: the narrowest well-known name, else the base class, else hex."""
    for name, triples in SPECIFIC.items():
        if name != "tethering" and any(_triple_matches(t, cls, sub, proto) for t in triples):
            return name
    return _BY_CODE.get(cls, f"{cls:02x}")


def class_code(cls: int, sub: int, proto: int) -> str:
    return f"{cls:02x}/{sub:02x}/{proto:02x}"
