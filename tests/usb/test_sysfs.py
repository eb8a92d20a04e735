"""Sysfs reads and writes on a tree of plain files (and a FIFO standing in for sysfs's page-per-read)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from boothguard.usb.sysfs import ATTR_LIMIT, DESCRIPTORS_LIMIT, Sysfs


@pytest.fixture
def sysfs(tmp_path: Path) -> Sysfs:
    dev = tmp_path / "bus" / "usb" / "devices" / "1-2"
    dev.mkdir(parents=True)
    (tmp_path / "bus" / "usb" / "drivers_probe").write_bytes(b"")
    (dev / "authorized").write_bytes(b"0\n")
    (dev / "idVendor").write_bytes(b"0781\n")
    return Sysfs(tmp_path)


def test_read_small_and_missing(sysfs: Sysfs) -> None:
    assert sysfs.read("1-2", "idVendor") == b"0781\n"
    assert sysfs.read_str("1-2", "idVendor") == "0781"
    assert sysfs.read("1-2", "serial") is None
    assert sysfs.read("1-9", "idVendor") is None


@pytest.mark.parametrize("size", [4095, 4096, 4097, 70_000])
def test_read_whole_attribute_past_a_page(sysfs: Sysfs, size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    (sysfs.path("1-2") / "descriptors").write_bytes(data)
    assert sysfs.read("1-2", "descriptors", DESCRIPTORS_LIMIT) == data


def test_read_stops_at_limit(sysfs: Sysfs) -> None:
    (sysfs.path("1-2") / "product").write_bytes(b"x" * 10_000)
    assert sysfs.read("1-2", "product") == b"x" * ATTR_LIMIT
    (sysfs.path("1-2") / "descriptors").write_bytes(b"y" * 10_000)
    assert sysfs.read("1-2", "descriptors", 6000) == b"y" * 6000


def test_read_goes_on_after_a_full_page(sysfs: Sysfs) -> None:
    """sysfs returns a binary attribute at most a page per read(): a FIFO fed a page, then the rest later,
    behaves the same; a single read would return the first page only (and the device would be blocked as
    having truncated descriptors)."""
    fifo = sysfs.path("1-2") / "descriptors"
    os.mkfifo(fifo)
    data = bytes(i % 253 for i in range(4096 + 900))

    def feed() -> None:
        with open(fifo, "wb", buffering=0) as f:
            f.write(data[:4096])
            time.sleep(0.2)
            f.write(data[4096:])

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        assert sysfs.read("1-2", "descriptors", DESCRIPTORS_LIMIT) == data
    finally:
        writer.join(5)


def test_write_replaces_value_and_needs_the_attribute(sysfs: Sysfs) -> None:
    sysfs.write("1-2", "authorized", "1")
    assert sysfs.read_str("1-2", "authorized") == "1"
    sysfs.write("1-2", "authorized", "0")
    assert sysfs.read_str("1-2", "authorized") == "0"
    with pytest.raises(OSError):  # a device that is gone: no attribute to write, nothing created
        sysfs.write("1-9", "authorized", "1")
    with pytest.raises(OSError):
        sysfs.write("1-2", "no_such_attribute", "1")
    assert not (sysfs.path("1-2") / "no_such_attribute").exists()


def test_probe_writes_the_interface_name(sysfs: Sysfs) -> None:
    sysfs.probe("1-2:1.0")
    assert (sysfs.root / "bus" / "usb" / "drivers_probe").read_bytes() == b"1-2:1.0"
