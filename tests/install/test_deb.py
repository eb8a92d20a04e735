"""The .deb in a clean Debian 12 root (debootstrap): install, run, upgrade (config and spool kept), purge."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import boothguard
from boothguard.install import deb
from boothguard.install.accounts import Ids
from tests.install import debroot

pytestmark = [pytest.mark.slow]
V1, V2 = "0.1.0~test1", "0.1.0~test2"


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Path]:
    if why := debroot.why_not():
        pytest.skip(why)
    staged: Path = request.getfixturevalue("staged")  # tests/install/conftest.py
    out = tmp_path_factory.mktemp("debs")
    # gzip -1: the test installs these once; release builds use xz.
    return {V1: deb.pack(staged, V1, out, "gzip"), V2: deb.pack(staged, V2, out, "gzip")}


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    if why := debroot.why_not():
        pytest.skip(why)
    with debroot.debian_root(tmp_path) as r:
        yield r


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install(root: Path, package: Path) -> None:
    target = root / "tmp" / package.name
    target.write_bytes(package.read_bytes())
    debroot.chroot(root, "dpkg", "-i", f"/tmp/{package.name}")
    target.unlink()


def run_agent_once(root: Path) -> int:
    """Start the packaged agent inside the root, send one custom event through it, stop it."""
    proc = subprocess.Popen(
        ["chroot", str(root), "/usr/bin/boothguard", "agent"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    )
    try:
        sock = root / "run/boothguard/agent.sock"
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "agent socket never appeared"
            time.sleep(0.1)
        seq = debroot.chroot(root, "/usr/bin/boothguard", "emit", "custom.deb_test", "--data", '{"n": 1}')
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.communicate()[0]
        return int(seq.stdout.strip())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_install_upgrade_purge(root: Path, debs: dict[str, Path]) -> None:
    # -- install -------------------------------------------------------------------------------------
    install(root, debs[V1])
    assert (root / "opt/boothguard/bin/boothguard").exists()
    ids = Ids.read(root)
    assert "boothguard" in ids.groups
    collector = ids.users["boothguard-collector"]
    state = (root / "var/lib/boothguard").stat()
    assert (state.st_mode & 0o7777, state.st_uid) == (0o700, 0)
    assert (root / "var/lib/boothguard-collector").stat().st_uid == collector
    conf = (root / "etc/boothguard/collector.toml").stat()
    assert (conf.st_mode & 0o7777, conf.st_gid) == (0o640, ids.groups["boothguard-collector"])
    wants = root / "etc/systemd/system/multi-user.target.wants/boothguard.service"
    assert wants.is_symlink()
    assert (root / "etc/systemd/user/graphical-session.target.wants/boothguard-session.service").is_symlink()
    assert not (root / "etc/systemd/system/multi-user.target.wants/boothguard-collector.service").exists()
    # The venv runs on a clean Debian 12 with its own Python: the CLI, config validation, the agent.
    debroot.chroot(root, "/usr/bin/boothguard", "config", "check")
    shown = debroot.chroot(root, "/usr/bin/boothguard", "--version").stdout
    assert shown == f"boothguard {boothguard.__version__}\n"  # the wheel's metadata, not the Debian version
    (root / "etc/boothguard/agent.d/50-test.toml").write_text(
        '[usb]\nmode = "off"\n[lock]\nenabled = false\n[agent]\nheartbeat_seconds = 3600\n'
    )
    assert run_agent_once(root) >= 2
    spool = root / "var/lib/boothguard/spool.db"
    spool_before = sha(spool)
    with (root / "etc/boothguard/collector.toml").open("a") as f:
        f.write("\n# edited by IT\n")
    edited = sha(root / "etc/boothguard/collector.toml")

    # -- upgrade -------------------------------------------------------------------------------------
    install(root, debs[V2])
    version = debroot.chroot(root, "dpkg-query", "-W", "-f=${Version}", "boothguard").stdout
    assert version == V2
    assert sha(root / "etc/boothguard/collector.toml") == edited
    assert sha(spool) == spool_before
    assert (root / "etc/boothguard/agent.d/50-test.toml").exists()
    assert wants.is_symlink()
    seq = run_agent_once(root)  # the chain goes on from the kept spool
    assert seq >= 4

    # -- purge ---------------------------------------------------------------------------------------
    debroot.chroot(root, "dpkg", "--purge", "boothguard")
    for gone in ("var/lib/boothguard", "var/lib/boothguard-collector", "etc/boothguard", "opt/boothguard"):
        assert not (root / gone).exists(), gone
    assert not os.path.lexists(wants)
    assert not (root / "lib/systemd/system/boothguard.service").exists()
    status = debroot.chroot(root, "dpkg-query", "-W", "-f=${Status}", "boothguard", check=False)
    assert "installed" not in status.stdout or "not-installed" in status.stdout
