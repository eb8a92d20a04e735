"""Quarantine by fd under the shipped unit's sandbox (systemd/boothguard.service), as far as a machine
without systemd allows: the real agent daemon runs in its own mount namespace with `/` read-only
(ProtectSystem=strict) except its state and runtime dirs (ReadWritePaths), tmpfs over /home and /root
(ProtectHome) and /tmp (PrivateTmp), and the unit's CapabilityBoundingSet. The operator's capture lives in
/tmp, which the agent cannot even see: only the fd the operator hands over reaches it.
"""

from __future__ import annotations

import configparser
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lock.mocklogind import MockLogind
from tests.redteam.test_quarantine_fd import OPERATOR, USER
from tests.session.conftest import wait_for
from tests.session.harness import Agent

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare"
)
UNIT = Path(__file__).parents[2] / "systemd" / "boothguard.service"

# $1: the dir to keep writable (ReadWritePaths); $2: capability bounding set; $3: the Python install to
# keep visible when it lives under /root (this machine's pyenv; a booth's is /usr); the rest: the agent.
SANDBOX = r"""
set -e
mount --rbind / /
mount --bind "$1" "$1"
mount -o remount,bind,ro /
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /home
case "$3" in /root/*) mkdir /tmp/.py && mount --bind "$3" /tmp/.py ;; esac
mount -t tmpfs -o mode=0700 tmpfs /root
case "$3" in /root/*) mkdir -p "$3" && mount --move /tmp/.py "$3" && rmdir /tmp/.py ;; esac
caps="$2"; shift 3
exec setpriv --bounding-set "$caps" --inh-caps -all -- "$@"
"""


def _unit_caps() -> str:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(UNIT)
    caps = unit["Service"]["CapabilityBoundingSet"].split()
    return ",".join(["-all", *(f"+{c.removeprefix('CAP_').lower()}" for c in caps)])


def _unit_has(key: str, value: str) -> bool:
    return f"{key}={value}" in UNIT.read_text().splitlines()


class SandboxedAgent(Agent):
    def __init__(self, base: Path, bus_address: str) -> None:
        settings = {
            "screenshot": {"policy": "quarantine", "quarantine_max_bytes": 4096},
            "lock": {"bus_address": bus_address},
        }
        super().__init__(base, settings)
        self.argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", SANDBOX, "sandbox"]
        self.argv += [str(base), _unit_caps(), sys.base_prefix, sys.executable, "-m", "boothguard", "agent"]
        self.argv += ["--config", str(self.config)]


@pytest.fixture
def base() -> Iterator[Path]:
    # Not under /tmp: the sandbox hides /tmp from the agent (PrivateTmp), as /var/lib/boothguard is not.
    path = Path(tempfile.mkdtemp(prefix="bg-quar-sbx-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def logind() -> Iterator[MockLogind]:
    """The private system bus outside /tmp, as /run/dbus is on a booth: PrivateTmp would hide it."""
    saved = tempfile.tempdir
    tempfile.tempdir = "/var/tmp"
    try:
        mock = MockLogind()
    finally:
        tempfile.tempdir = saved
    try:
        yield mock
    finally:
        mock.close()


def test_quarantine_works_under_the_units_sandbox(base: Path, logind: MockLogind) -> None:
    assert _unit_has("ProtectHome", "yes")
    assert _unit_has("PrivateTmp", "yes")
    assert _unit_has("ProtectSystem", "strict")
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        user = pwd.getpwnam(USER)
    shots = Path(tempfile.mkdtemp(prefix="bg-quar-op-"))  # the operator's capture, in the real /tmp
    try:
        os.chown(shots, user.pw_uid, user.pw_gid)
        shot = shots / "Screenshot.png"
        shot.write_bytes(b"\x89PNG sandboxed")
        os.chown(shot, user.pw_uid, user.pw_gid)
        agent = SandboxedAgent(base, logind.address).start()
        try:
            status = Path(f"/proc/{agent.pid}/status").read_text()
            assert "CapBnd:\t0000000000000001" in status  # CAP_CHOWN only, as the unit says
            door = agent.runtime_dir / "quarantine.sock"
            assert wait_for(door.exists, 10)
            operator = subprocess.Popen(
                ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
                 "/usr/bin/python3", "-c", OPERATOR, str(agent.socket), str(door), "files", str(shot)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
            logind.add_session("q1", user.pw_uid, user.pw_name, pids=(operator.pid,))
            stdout, _ = operator.communicate(b"go\n", timeout=60)
            assert operator.returncode == 0, agent.lines[-10:]
            (reply,) = json.loads(stdout)
            assert reply["ok"] is True, (reply, agent.lines[-10:])
            assert (
                agent.state_dir / "quarantine" / reply["quarantined"]
            ).read_bytes() == b"\x89PNG sandboxed"
            # The agent's view really is the sandbox: the operator's /tmp dir does not exist for it.
            assert not Path(f"/proc/{agent.pid}/root{shots}").exists()
        finally:
            agent.stop()
    finally:
        shutil.rmtree(shots, ignore_errors=True)
