"""Build raw USB descriptors (as the sysfs `descriptors` attribute holds them) for test devices."""

from __future__ import annotations

Iface = tuple[int, int, int]  # class, subclass, protocol


def device_descriptor(vid: int, pid: int, dev_class: Iface = (0, 0, 0), configs: int = 1) -> bytes:
    vid_le, pid_le = vid.to_bytes(2, "little"), pid.to_bytes(2, "little")
    return bytes([18, 1, 0, 2, *dev_class, 64, *vid_le, *pid_le, 0, 1, 1, 2, 3, configs])


def interface_descriptor(number: int, alt: int, cls: Iface, string: int = 0) -> bytes:
    return bytes([9, 4, number, alt, 1, *cls, string]) + bytes([7, 5, 0x81 + number % 8, 2, 0, 2, 0])


def config_descriptor(value: int, interfaces: list[tuple[int, int, Iface]]) -> bytes:
    body = b"".join(interface_descriptor(n, a, c) for n, a, c in interfaces)
    count = len({n for n, _, _ in interfaces})
    total = 9 + len(body)
    return bytes([9, 2, *total.to_bytes(2, "little"), count, value, 0, 0x80, 50]) + body


def descriptors(vid: int, pid: int, classes: list[Iface], dev_class: Iface = (0, 0, 0)) -> bytes:
    """One configuration (value 1), one alternate setting per interface."""
    return device_descriptor(vid, pid, dev_class) + config_descriptor(
        1, [(n, 0, c) for n, c in enumerate(classes)]
    )


STORAGE: Iface = (0x08, 0x06, 0x50)
KEYBOARD: Iface = (0x03, 0x01, 0x01)
HID: Iface = (0x03, 0x00, 0x00)
AUDIO_CONTROL: Iface = (0x01, 0x01, 0x00)
AUDIO_STREAM: Iface = (0x01, 0x02, 0x00)
HUB: Iface = (0x09, 0x00, 0x00)
MTP: Iface = (0x06, 0x01, 0x01)
ADB: Iface = (0xFF, 0x42, 0x01)
RNDIS: Iface = (0xE0, 0x01, 0x03)
CDC_DATA: Iface = (0x0A, 0x00, 0x00)
CDC_ECM: Iface = (0x02, 0x06, 0x00)
VENDOR: Iface = (0xFF, 0xFF, 0x00)
