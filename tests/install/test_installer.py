"""`boothguard install --root DIR`: what lands where, with owners and modes; idempotent; configs kept."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from boothguard.install import layout
from boothguard.install.accounts import Ids
from boothguard.install.deb import build_wheel
from tests.install.tree import snapshot

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install sets owners: needs root")


def install(root: Path, *extra: str, pythonpath: str | None = None, cwd: Path | None = None) -> str:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(
        [sys.executable, "-m", "boothguard", "install", "--root", str(root), *extra],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_places_everything_with_owners_and_modes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(root, "--bin", "/usr/local/bin/boothguard", "--python", "/usr/bin/python3")
    tree = snapshot(root)
    ids = Ids.read(root)
    collector_uid = ids.users["boothguard-collector"]
    collector_gid = ids.groups["boothguard-collector"]
    assert "boothguard" in ids.groups
    assert "boothguard-cti" in ids.groups
    assert collector_uid != 0
    assert collector_gid != 0

    assert tree["var/lib/boothguard"][:4] == ("dir", 0o700, 0, 0)
    assert tree["var/lib/boothguard-collector"][:4] == ("dir", 0o700, collector_uid, collector_gid)
    assert tree["etc/boothguard"][:4] == ("dir", 0o755, 0, 0)
    assert tree["etc/boothguard/collector.d"][:4] == ("dir", 0o750, 0, collector_gid)
    for unit in ("lib/systemd/system/boothguard.service", "lib/systemd/system/boothguard-collector.service"):
        assert tree[unit][:4] == ("file", 0o644, 0, 0)
    assert tree["usr/lib/systemd/user/boothguard-session.service"][:4] == ("file", 0o644, 0, 0)
    assert tree["lib/udev/rules.d/70-boothguard.rules"][:4] == ("file", 0o644, 0, 0)
    assert tree["etc/xdg/autostart/boothguard-session.desktop"][:4] == ("file", 0o644, 0, 0)
    assert tree["usr/lib/tmpfiles.d/boothguard.conf"][:4] == ("file", 0o644, 0, 0)
    if (REPO / "config/collector.toml").exists():
        assert tree["etc/boothguard/collector.toml"][:4] == ("file", 0o640, 0, collector_gid)
    if (REPO / "config/agent.toml").exists():
        assert tree["etc/boothguard/agent.toml"][:4] == ("file", 0o644, 0, 0)
    # Runtime state is not placed into an image: /run is created at boot by tmpfiles.d.
    assert not (root / "run").exists()

    # Paths in units and the udev rule are this installation's.
    agent = (root / "lib/systemd/system/boothguard.service").read_text()
    assert "ExecStart=/usr/local/bin/boothguard agent" in agent
    assert "/opt/boothguard" not in agent
    rule = (root / "lib/udev/rules.d/70-boothguard.rules").read_text()
    assert 'IMPORT{program}="/usr/bin/python3 -m boothguard.install.udev_mode"' in rule
    desktop = (root / "etc/xdg/autostart/boothguard-session.desktop").read_text()
    assert "Exec=/usr/local/bin/boothguard session" in desktop


def test_twice_gives_the_identical_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(root)
    first = snapshot(root)
    out = install(root)
    assert snapshot(root) == first
    assert "created" not in out
    assert "updated" not in out


def test_repairs_modes_and_content_but_keeps_configs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(root)
    first = snapshot(root)
    unit = root / "lib/systemd/system/boothguard.service"
    unit.write_text("tampered\n")
    (root / "var/lib/boothguard").chmod(0o755)
    configs = [
        p for p in ("etc/boothguard/agent.toml", "etc/boothguard/collector.toml") if (root / p).exists()
    ]
    assert configs, "no example config in the build"
    for rel in configs:
        (root / rel).write_text("# edited by IT\n")
    install(root)
    after = snapshot(root)
    assert after["lib/systemd/system/boothguard.service"] == first["lib/systemd/system/boothguard.service"]
    assert after["var/lib/boothguard"] == first["var/lib/boothguard"]
    for rel in configs:
        assert (root / rel).read_text() == "# edited by IT\n"


def test_enable_links_the_agent_and_the_session_watcher(tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(root, "--enable")
    wants = root / "etc/systemd/system/multi-user.target.wants/boothguard.service"
    assert os.readlink(wants) == f"{layout.SYSTEM_UNIT_DIR}/{layout.AGENT_UNIT}"
    user = root / "etc/systemd/user/graphical-session.target.wants/boothguard-session.service"
    assert os.readlink(user) == f"{layout.USER_UNIT_DIR}/{layout.SESSION_UNIT}"


def test_installs_from_a_built_wheel(tmp_path: Path) -> None:
    """The data files travel inside the package: a wheel, unpacked away from the checkout, installs them."""
    wheel = build_wheel(REPO, tmp_path / "wheels")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    root = tmp_path / "root"
    install(root, pythonpath=str(site), cwd=tmp_path)
    expected = snapshot(tmp_path / "root")
    ref = tmp_path / "ref"
    install(ref)
    assert snapshot(ref) == expected
    assert (root / "lib/systemd/system/boothguard.service").exists()
