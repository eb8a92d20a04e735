"""The boothguard group and the collector's system user: created from sysusers.d, resolved inside a root."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from boothguard import log

_log = log.get("install.accounts")


@dataclass
class Ids:
    """Name → id from `<root>/etc/passwd` and `<root>/etc/group` (not NSS: the root may not be ours)."""

    users: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path) -> Ids:
        return cls(_table(root / "etc" / "passwd"), _table(root / "etc" / "group"))


def _table(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            out.setdefault(parts[0], int(parts[2]))
    return out


def ensure(root: Path, sysusers_conf: Path) -> str | None:
    """Create what `sysusers_conf` declares inside `root`. Returns a problem, or None when done."""
    tool = shutil.which("systemd-sysusers")
    if tool is None:
        return "systemd-sysusers not found: create the boothguard group and boothguard-collector user by hand"
    argv = [tool, str(sysusers_conf)] if root == Path("/") else [tool, f"--root={root}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return f"systemd-sysusers failed ({proc.returncode}): {proc.stderr.strip()[:300]}"
    _log.debug("accounts_ensured", root=str(root))
    return None
