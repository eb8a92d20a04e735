"""Parse the binary sysfs ``descriptors`` attribute: the device descriptor, then each configuration's raw
descriptors as the device sent them (present even while the device is unauthorized).

The bytes come from an untrusted device: every length is checked and anything malformed raises
DescriptorError, which the policy turns into a block.
"""

from __future__ import annotations

from dataclasses import dataclass

from boothguard.errors import BoothguardError

DEVICE_DESCRIPTOR_LEN = 18
CONFIG_DESCRIPTOR_LEN = 9
INTERFACE_DESCRIPTOR_LEN = 9
TYPE_DEVICE = 1
TYPE_CONFIG = 2
TYPE_INTERFACE = 4
MAX_CONFIGS = 32
MAX_INTERFACES = 256


class DescriptorError(BoothguardError):
    pass


@dataclass(frozen=True)
class AltSetting:
    config: int  # bConfigurationValue
    number: int  # bInterfaceNumber
    alt: int
    cls: int
    subclass: int
    protocol: int


@dataclass(frozen=True)
class Descriptors:
    vendor_id: int
    product_id: int
    device_class: tuple[int, int, int]
    alt_settings: tuple[AltSetting, ...]

    def interface_keys(self) -> list[tuple[int, int]]:
        """(config, interface number) pairs, each once, in descriptor order."""
        return list(dict.fromkeys((a.config, a.number) for a in self.alt_settings))


def parse(data: bytes) -> Descriptors:
    if len(data) < DEVICE_DESCRIPTOR_LEN:
        raise DescriptorError(f"device descriptor truncated ({len(data)} bytes)")
    if data[0] != DEVICE_DESCRIPTOR_LEN or data[1] != TYPE_DEVICE:
        raise DescriptorError(f"not a device descriptor (bLength {data[0]}, type {data[1]})")
    vendor = int.from_bytes(data[8:10], "little")
    product = int.from_bytes(data[10:12], "little")
    num_configs = data[17]
    if num_configs > MAX_CONFIGS:
        raise DescriptorError(f"{num_configs} configurations")
    alts: list[AltSetting] = []
    pos = DEVICE_DESCRIPTOR_LEN
    for _ in range(num_configs):
        if pos >= len(data):
            break  # the kernel keeps only the configurations it could read
        pos = _parse_config(data, pos, alts)
    if len(alts) > MAX_INTERFACES:
        raise DescriptorError(f"{len(alts)} interface descriptors")
    return Descriptors(vendor, product, (data[4], data[5], data[6]), tuple(alts))


def _parse_config(data: bytes, pos: int, alts: list[AltSetting]) -> int:
    head = data[pos : pos + CONFIG_DESCRIPTOR_LEN]
    if len(head) < CONFIG_DESCRIPTOR_LEN or head[0] < CONFIG_DESCRIPTOR_LEN or head[1] != TYPE_CONFIG:
        raise DescriptorError(f"bad configuration descriptor at offset {pos}")
    total = int.from_bytes(head[2:4], "little")
    if total < head[0] or pos + total > len(data):
        raise DescriptorError(f"configuration at offset {pos} claims {total} bytes")
    value = head[5]
    end = pos + total
    p = pos + head[0]
    while p < end:
        length, kind = data[p], data[p + 1] if p + 1 < end else -1
        if length < 2 or p + length > end:
            raise DescriptorError(f"descriptor at offset {p} has length {length}")
        if kind == TYPE_INTERFACE:
            if length < INTERFACE_DESCRIPTOR_LEN:
                raise DescriptorError(f"interface descriptor at offset {p} too short")
            d = data[p : p + INTERFACE_DESCRIPTOR_LEN]
            alts.append(AltSetting(value, d[2], d[3], d[5], d[6], d[7]))
        p += length
    return end
