"""The shipped units pass `systemd-analyze verify` and score within budget on `systemd-analyze security`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze missing (apt: systemd)")
SYSTEM_UNITS = ("boothguard.service", "boothguard-collector.service")
SESSION_UNIT = "boothguard-session.service"
BUDGET = {"boothguard.service": 2.9, "boothguard-collector.service": 2.0}


def analyze(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def system_root(tmp: Path, units: list[Path]) -> Path:
    """A root with systemd's own units (targets the ours depend on), /bin/kill and the ExecStart binary."""
    root = tmp / "root"
    for sub in ("etc/systemd/system", "usr/lib/systemd", "usr/bin", "opt/boothguard/bin"):
        (root / sub).mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "lib").symlink_to("usr/lib")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copy2("/usr/bin/kill", root / "usr/bin/kill")
    stub = root / "opt/boothguard/bin/boothguard"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    for unit in units:
        shutil.copy2(unit, root / "etc/systemd/system" / unit.name)
    return root


def user_env(tmp: Path) -> dict[str, str]:
    runtime = tmp / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return {"XDG_RUNTIME_DIR": str(runtime)}


def test_system_units_verify_clean(tmp_path: Path) -> None:
    root = system_root(tmp_path, [UNITS / u for u in SYSTEM_UNITS])
    proc = analyze("verify", "--man=no", f"--root={root}", *SYSTEM_UNITS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    """The same command does notice problems (so the clean result above means something)."""
    broken = tmp_path / "broken" / "boothguard.service"
    broken.parent.mkdir()
    text = (UNITS / "boothguard.service").read_text()
    broken.write_text(text.replace("ProtectSystem=strict", "ProtectSystem=strict\nProtectSytem=yes"))
    root = system_root(tmp_path, [broken])
    proc = analyze("verify", "--man=no", f"--root={root}", "boothguard.service")
    assert "Unknown key" in proc.stderr


def test_session_user_unit_verifies_clean(tmp_path: Path) -> None:
    # --root does not combine with --user here: point ExecStart at a binary that exists on this machine.
    unit = tmp_path / SESSION_UNIT
    text = (UNITS / SESSION_UNIT).read_text().replace("/opt/boothguard/bin/boothguard", "/bin/true")
    unit.write_text(text)
    proc = analyze("verify", "--user", "--man=no", str(unit), env=user_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def exposure(unit: Path, *extra: str, env: dict[str, str] | None = None) -> float:
    proc = analyze("security", "--offline=true", *extra, str(unit), env=env)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert m, proc.stdout + proc.stderr
    return float(m.group(1))


@pytest.mark.parametrize("name", sorted(BUDGET))
def test_security_exposure_within_budget(name: str) -> None:
    score = exposure(UNITS / name)
    print(f"{name}: {score}")
    assert score <= BUDGET[name]


def test_security_score_would_fail_a_plain_unit(tmp_path: Path) -> None:
    plain = tmp_path / "plain.service"
    plain.write_text("[Service]\nExecStart=/bin/true\n")
    assert exposure(plain) > 9.0


def test_agent_unit_contract() -> None:
    """What the agent's job needs: notify + watchdog, restart, ordered before the display manager."""
    text = (UNITS / "boothguard.service").read_text()
    for line in (
        "Type=notify",
        "Restart=always",
        "Before=display-manager.service",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/boothguard /run/boothguard",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6",
    ):
        assert line in text.splitlines(), line
    assert re.search(r"^WatchdogSec=\d+", text, re.M)
    # The agent writes USB authorization to sysfs: kernel tunables must stay writable.
    assert "ProtectKernelTunables=yes" not in text
    session = (UNITS / SESSION_UNIT).read_text()
    assert "PartOf=graphical-session.target" in session
    assert "WantedBy=graphical-session.target" in session
