"""What `boothguard install` places, where, with which owner and mode; the .deb is built from it too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["dir", "file", "config"]

# Placeholders in the shipped files, replaced by the installation's real paths.
BIN_PLACEHOLDER = "/opt/boothguard/bin/boothguard"
PYTHON_PLACEHOLDER = "/opt/boothguard/bin/python"

AGENT_UNIT = "boothguard.service"
SESSION_UNIT = "boothguard-session.service"
COLLECTOR_UNIT = "boothguard-collector.service"
COLLECTOR_USER = "boothguard-collector"
CONTROL_GROUP = "boothguard"

SYSTEM_UNIT_DIR = "/lib/systemd/system"
USER_UNIT_DIR = "/usr/lib/systemd/user"
SYSUSERS_CONF = "/usr/lib/sysusers.d/boothguard.conf"
TMPFILES_CONF = "/usr/lib/tmpfiles.d/boothguard.conf"
UDEV_RULE = "/lib/udev/rules.d/70-boothguard.rules"
AUTOSTART = "/etc/xdg/autostart/boothguard-session.desktop"
EXAMPLES_DIR = "/usr/share/boothguard/examples"
STATE_DIR = "/var/lib/boothguard"
COLLECTOR_STATE_DIR = "/var/lib/boothguard-collector"
RUNTIME_DIR = "/run/boothguard"


@dataclass(frozen=True)
class Entry:
    """One path. `dir`: created, then owner and mode enforced. `file`: ours, rewritten when it differs.
    `config`: the administrator's once placed, never overwritten."""

    path: str
    kind: Kind
    mode: int
    owner: str = "root"
    group: str = "root"
    source: str | None = None  # path under the package's data/ directory
    template: bool = False


def entries(example_configs: list[str]) -> list[Entry]:
    """Every entry, parents before children. `example_configs`: file names found in data/config/."""
    out = [
        Entry("/etc/boothguard", "dir", 0o755),
        Entry("/etc/boothguard/agent.d", "dir", 0o755),
        Entry("/etc/boothguard/collector.d", "dir", 0o750, group=COLLECTOR_USER),
        Entry(STATE_DIR, "dir", 0o700),
        Entry(COLLECTOR_STATE_DIR, "dir", 0o700, owner=COLLECTOR_USER, group=COLLECTOR_USER),
        Entry(EXAMPLES_DIR, "dir", 0o755),
        Entry(
            f"{SYSTEM_UNIT_DIR}/{AGENT_UNIT}", "file", 0o644, source=f"systemd/{AGENT_UNIT}", template=True
        ),
        Entry(
            f"{SYSTEM_UNIT_DIR}/{COLLECTOR_UNIT}",
            "file",
            0o644,
            source=f"systemd/{COLLECTOR_UNIT}",
            template=True,
        ),
        Entry(
            f"{USER_UNIT_DIR}/{SESSION_UNIT}", "file", 0o644, source=f"systemd/{SESSION_UNIT}", template=True
        ),
        Entry(UDEV_RULE, "file", 0o644, source="systemd/70-boothguard.rules", template=True),
        Entry(AUTOSTART, "file", 0o644, source="systemd/boothguard-session.desktop", template=True),
        Entry(SYSUSERS_CONF, "file", 0o644, source="systemd/boothguard.sysusers"),
        Entry(TMPFILES_CONF, "file", 0o644, source="systemd/boothguard.tmpfiles"),
    ]
    out += [
        Entry(f"{EXAMPLES_DIR}/{name}", "file", 0o644, source=f"config/{name}") for name in example_configs
    ]
    if "agent.toml" in example_configs:
        out.append(Entry("/etc/boothguard/agent.toml", "config", 0o644, source="config/agent.toml"))
    if "collector.toml" in example_configs:
        # May hold a database URL with a password: readable by the collector's user only.
        out.append(
            Entry(
                "/etc/boothguard/collector.toml",
                "config",
                0o640,
                group=COLLECTOR_USER,
                source="config/collector.toml",
            )
        )
    return out


def conffiles(example_configs: list[str]) -> list[str]:
    """Paths dpkg treats as conffiles: the administrator's configs and the autostart entry under /etc."""
    return [
        e.path
        for e in entries(example_configs)
        if e.kind == "config" or (e.path.startswith("/etc/") and e.kind == "file")
    ]
