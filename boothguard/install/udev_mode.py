"""`python -m boothguard.install.udev_mode`: the USB mode for the udev rule (`KEY=value`, IMPORT{program}).

Runs for every USB bus that appears, possibly before the agent, so it only parses TOML (no validation, no
pydantic) and fails closed: anything but an explicit `usb.mode = "audit"` or `"off"` prints `enforce`.
"""

from __future__ import annotations

import contextlib
import sys
import tomllib
from pathlib import Path

ETC_AGENT = Path("/etc/boothguard/agent.toml")
OPEN_MODES = ("audit", "off")


def usb_mode(main: Path = ETC_AGENT) -> str:
    files = [main]
    dropins = main.with_suffix(".d")
    with contextlib.suppress(OSError):
        files += sorted(p for p in dropins.iterdir() if p.suffix == ".toml")
    mode = "enforce"
    for path in files:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return "enforce"  # a config the agent would refuse: keep the buses closed
        usb = data.get("usb")
        if isinstance(usb, dict) and "mode" in usb:
            mode = str(usb["mode"])
    return mode if mode in OPEN_MODES else "enforce"


def main(argv: list[str]) -> int:
    main_file = Path(argv[1]) if len(argv) > 1 else ETC_AGENT
    print(f"BOOTHGUARD_USB_MODE={usb_mode(main_file)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
