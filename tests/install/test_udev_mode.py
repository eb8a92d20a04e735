"""The udev rule's helper: the USB mode from agent.toml and agent.d/, failing closed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def mode(main: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "boothguard.install.udev_mode", str(main)],
        capture_output=True,
        check=True,
        text=True,
        timeout=30,
    )
    key, _, value = proc.stdout.strip().partition("=")
    assert key == "BOOTHGUARD_USB_MODE"
    return value


@pytest.mark.parametrize(
    ("main", "dropins", "expected"),
    [
        (None, {}, "enforce"),  # no config at all: the default
        ('[usb]\nmode = "audit"\n', {}, "audit"),
        ('[usb]\nmode = "off"\n', {}, "off"),
        ('[usb]\nmode = "audit"\n', {"50-x.toml": '[usb]\nmode = "enforce"\n'}, "enforce"),
        ('[usb]\nmode = "enforce"\n', {"10-a.toml": '[usb]\nmode = "off"\n', "20-b.toml": "[ship]\n"}, "off"),
        ('[usb]\nmode = "audit"\n', {"ignored.conf": '[usb]\nmode = "enforce"\n'}, "audit"),
        ('[usb]\nmode = "sometimes"\n', {}, "enforce"),  # invalid: the agent would refuse it
        ('[usb]\nmode = "audit"\n', {"50-broken.toml": "[usb\n"}, "enforce"),  # broken TOML: closed
        ("[usb]\nmode = 1\n", {}, "enforce"),
    ],
)
def test_mode(tmp_path: Path, main: str | None, dropins: dict[str, str], expected: str) -> None:
    path = tmp_path / "agent.toml"
    if main is not None:
        path.write_text(main)
    if dropins:
        (tmp_path / "agent.d").mkdir()
        for name, text in dropins.items():
            (tmp_path / "agent.d" / name).write_text(text)
    assert mode(path) == expected


def test_rule_names_the_helper_and_opens_only_on_explicit_modes() -> None:
    rule = (REPO / "systemd/70-boothguard.rules").read_text()
    assert 'IMPORT{program}="/opt/boothguard/bin/python -m boothguard.install.udev_mode"' in rule
    assert 'ENV{BOOTHGUARD_USB_MODE}!="audit|off", ATTR{authorized_default}="0"' in rule
    assert 'TEST!="authorized_default", GOTO="boothguard_end"' in rule
