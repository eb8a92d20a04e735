"""Pure parts: descriptor parsing against hostile input, rule matching, per-interface verdicts, strings."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boothguard.config import load_agent
from boothguard.errors import ConfigError
from boothguard.usb.descriptors import DescriptorError, parse
from boothguard.usb.policy import DeviceFacts, decide
from boothguard.usb.rules import RuleSet
from boothguard.usb.sanitize import clean
from boothguard.usb.settings import UsbRule, UsbSection
from boothguard.usb.sysfs import usb_device_of
from tests.usb import descbuild as d


def facts(classes: list[d.Iface], vid: int = 0x1234, pid: int = 0x5678, **kw: object) -> DeviceFacts:
    raw = d.descriptors(vid, pid, classes)
    return DeviceFacts(
        name="1-2", vendor_id=f"{vid:04x}", product_id=f"{pid:04x}", descriptors=parse(raw), **kw
    )  # type: ignore[arg-type]


DEFAULT = RuleSet.from_settings(UsbSection())


def test_parse_reads_every_alt_setting_of_every_config() -> None:
    raw = (
        d.device_descriptor(0x0B0E, 0x0412, configs=2)
        + d.config_descriptor(1, [(0, 0, d.AUDIO_CONTROL), (1, 0, d.AUDIO_STREAM), (1, 1, d.STORAGE)])
        + d.config_descriptor(2, [(0, 0, d.HID)])
    )
    desc = parse(raw)
    assert (desc.vendor_id, desc.product_id) == (0x0B0E, 0x0412)
    assert desc.interface_keys() == [(1, 0), (1, 1), (2, 0)]
    assert [(a.config, a.number, a.alt, a.cls) for a in desc.alt_settings] == [
        (1, 0, 0, 1),
        (1, 1, 0, 1),
        (1, 1, 1, 8),
        (2, 0, 0, 3),
    ]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x12\x01",
        bytes(18),
        d.device_descriptor(1, 2) + b"\x09\x02\xff\xff\x01\x01\x00\x80\x32",  # claims 65535 bytes
        d.device_descriptor(1, 2) + b"\x09\x02\x0c\x00\x01\x01\x00\x80\x32\x00\x04\x00",  # zero-length
        d.device_descriptor(1, 2)
        + b"\x09\x02\x0e\x00\x01\x01\x00\x80\x32\x05\x04\x00\x00\x08",  # short iface
        d.device_descriptor(1, 2) + b"\x05\x02\x05\x00\x01",  # config bLength < 9
    ],
)
def test_malformed_descriptors_raise(raw: bytes) -> None:
    with pytest.raises(DescriptorError):
        parse(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_crashes_the_parser(tail: bytes) -> None:
    for raw in (tail, d.device_descriptor(1, 2) + tail):
        with contextlib.suppress(DescriptorError):
            parse(raw)


def test_garbage_descriptors_fall_to_block() -> None:
    f = DeviceFacts(name="1-2", vendor_id="1234", product_id="5678", descriptor_error="truncated")
    decision = decide(f, DEFAULT)
    assert (decision.verdict, decision.rule) == ("block", "invalid-descriptors")


@pytest.mark.parametrize(
    ("classes", "verdict", "rule"),
    [
        ([d.STORAGE], "block", "block-mass-storage"),
        ([d.MTP, d.ADB], "block", "block-mtp"),
        ([(0x06, 0x01, 0x00)], "block", "block-still-image"),
        ([d.RNDIS, d.CDC_DATA], "block", "block-tethering"),
        ([d.CDC_ECM, d.CDC_DATA], "block", "block-tethering"),
        ([d.KEYBOARD], "allow", "allow-hid"),
        ([d.HUB], "allow", "allow-hubs"),
        ([d.AUDIO_CONTROL, d.AUDIO_STREAM, d.HID], "allow", "allow-audio"),
        ([d.AUDIO_CONTROL, d.AUDIO_STREAM, d.HID, d.STORAGE], "partial", "block-mass-storage"),
        ([d.VENDOR], "block", "implicit"),
        ([(0x0E, 0x01, 0x00)], "block", "implicit"),  # webcam: nothing allows video
    ],
)
def test_shipped_defaults(classes: list[d.Iface], verdict: str, rule: str) -> None:
    decision = decide(facts(classes), DEFAULT)
    assert (decision.verdict, decision.rule) == (verdict, rule)


def test_composite_blocks_only_the_offending_interface() -> None:
    decision = decide(facts([d.AUDIO_CONTROL, d.HID, d.STORAGE]), DEFAULT)
    assert decision.allowed_interfaces == {"1-2:1.0", "1-2:1.1"}
    assert [(i.name, i.classes, i.rule) for i in decision.blocked_interfaces] == [
        ("1-2:1.2", ("mass_storage",), "block-mass-storage")
    ]
    whole = RuleSet.from_settings(UsbSection(per_interface=False))
    assert decide(facts([d.AUDIO_CONTROL, d.HID, d.STORAGE]), whole).verdict == "block"


def test_interface_allowed_only_if_every_alt_setting_is() -> None:
    raw = d.device_descriptor(1, 2) + d.config_descriptor(1, [(0, 0, d.AUDIO_STREAM), (0, 1, d.STORAGE)])
    f = DeviceFacts(name="3-1", vendor_id="0001", product_id="0002", descriptors=parse(raw))
    assert decide(f, DEFAULT).verdict == "block"


def test_mtp_by_interface_string_once_known() -> None:
    f = facts([d.HID, d.VENDOR], interface_labels={"1-2:1.1": "MTP"})
    rules = RuleSet.from_settings(
        UsbSection(rules=[UsbRule(id="vendor-ok", action="allow", interfaces_any=["vendor_specific"])])
    )
    # The user's allow rule comes first; MTP must still be caught if the user orders block-mtp first.
    assert decide(f, rules).verdict == "allow"
    rules = RuleSet.from_settings(
        UsbSection(
            default_rules=True,
            rules=[
                UsbRule(id="no-mtp", action="block", interfaces_any=["mtp"]),
                UsbRule(id="vendor-ok", action="allow", interfaces_any=["vendor_specific"]),
            ],
        )
    )
    decision = decide(f, rules)
    assert (decision.verdict, decision.rule) == ("partial", "no-mtp")


def test_headset_allow_list_by_vendor_and_identity_conditions() -> None:
    usb = UsbSection(
        rules=[
            UsbRule(id="jabra", action="allow", vendor_id="0b0e", interfaces_all=["audio", "hid"]),
            UsbRule(id="other-audio", action="block", interfaces_any=["audio"]),
            UsbRule(id="desk-port", action="allow", port=["1-9*"], serial=["SN1"], product_name="*Stick*"),
        ]
    )
    rules = RuleSet.from_settings(usb)
    jabra = decide(facts([d.AUDIO_CONTROL, d.HID], vid=0x0B0E), rules)
    assert (jabra.verdict, jabra.rule) == ("allow", "jabra")
    other = decide(facts([d.AUDIO_CONTROL, d.HID], vid=0x1111), rules)
    assert (other.verdict, other.rule) == ("partial", "other-audio")
    # interfaces_all does not cover a storage interface: the default rule still blocks it.
    jabra_storage = decide(facts([d.AUDIO_CONTROL, d.STORAGE], vid=0x0B0E), rules)
    assert [i.rule for i in jabra_storage.interfaces] == ["other-audio", "block-mass-storage"]
    stick = DeviceFacts(
        name="1-9.2",
        vendor_id="0781",
        product_id="5567",
        serial="SN1",
        product="Cruzer Stick",
        descriptors=parse(d.descriptors(0x0781, 0x5567, [d.STORAGE])),
    )
    assert decide(stick, rules).rule == "desk-port"
    assert decide(DeviceFacts(**{**stick.__dict__, "serial": "SN2"}), rules).rule == "block-mass-storage"


def test_implicit_allow_and_no_default_rules() -> None:
    rules = RuleSet.from_settings(UsbSection(default_rules=False, implicit_target="allow"))
    assert decide(facts([d.STORAGE]), rules).rule == "implicit"
    assert decide(facts([d.STORAGE]), rules).verdict == "allow"


def test_clean_strips_controls_and_bounds_length() -> None:
    hostile = "\x1b[31mEvil\x00 \xff\xfe Disk\u202e".encode() + b"\xc3(" + b"A" * 2_000_000
    out = clean(hostile)
    assert out is not None
    assert len(out) <= 128
    assert all(ch.isprintable() for ch in out)
    assert clean(b"\x00\x01") is None
    assert clean("Jabra\u202eEvolve\u200b 40") == "JabraEvolve 40"


def test_usb_device_of_block_devpath() -> None:
    path = "/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2.4/1-2.4:1.0/host0/target0:0:0/0:0:0:0/block/sda"
    assert usb_device_of(path) == "1-2.4"
    assert usb_device_of("/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda") is None


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_agent(path, env={}, check_permissions=False)
    return [str(p) for p in info.value.problems]


def test_rule_errors_name_file_and_line(tmp_path: Path) -> None:
    main = tmp_path / "agent.toml"
    main.write_text(
        '[usb]\nmode = "enforce"\n\n[[usb.rules]]\nid = "ok"\naction = "allow"\nvendor_id = "0b0e"\n\n'
        '[[usb.rules]]\nid = "bad"\naction = "permit"\ninterfaces_any = ["flash_drive"]\n'
        'vendor_id = ["xyz"]\n'
    )
    found = _problems(main)
    assert any(p.startswith(f"{main}:11: usb.rules.1.action:") for p in found), found
    assert any(p.startswith(f"{main}:12: usb.rules.1.interfaces_any:") and "flash_drive" in p for p in found)
    assert any(p.startswith(f"{main}:13: usb.rules.1.vendor_id:") for p in found), found
    main.write_text('[[usb.rules]]\nid = "a"\naction = "allow"\n[[usb.rules]]\nid = "a"\naction = "block"\n')
    # A model-level error is located at its table.
    assert any(p.startswith(f"{main}:1: usb:") and "duplicate rule id 'a'" in p for p in _problems(main))
    main.write_text('[[usb.rules]]\nid = "a"\naction = "allow"\nvendor = "0b0e"\n')
    assert _problems(main) == [f"{main}:4: usb.rules.0.vendor: unknown key"]


def test_example_config_parses(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "config" / "agent.toml"
    cfg = load_agent(example, env={}, check_permissions=False)
    assert cfg.usb.mode == "enforce"
    assert cfg.usb.default_rules
    assert os.path.getsize(example) > 0


@pytest.mark.parametrize("bad", ["", "-lead", "has space", "trailing\n", "x" * 65, "ü-umlaut"])
def test_rule_ids_are_plain_names(bad: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        UsbRule(id=bad, action="allow")
    assert UsbRule(id="Ok.rule_1-a", action="block").id == "Ok.rule_1-a"
