from typing import Literal

from boothguard.section import Section


class UsbSection(Section):
    mode: Literal["enforce", "audit", "off"] = "enforce"
