"""A real unprivileged operator for the tests that play the insider: a throwaway user (useradd), commands run
as that user (setpriv), and the mocked logind's private system bus opened to them (as the real one is)."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Operator:
    name: str
    uid: int
    gid: int
    home: Path

    def argv(self, *argv: str) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--", *argv]

    def env(self, **extra: str) -> dict[str, str]:
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home), "USER": self.name}
        return {**base, **extra}


@contextmanager
def operator_user(prefix: str = "bgop") -> Iterator[Operator]:
    """A new user with its own home (under /tmp), removed afterwards."""
    if os.geteuid() != 0 or not (shutil.which("useradd") and shutil.which("setpriv")):
        pytest.skip("needs root, useradd and setpriv to play an unprivileged operator")
    name = f"{prefix}{secrets.token_hex(4)}"
    home = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin", "-U", name],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        pw = pwd.getpwnam(name)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        home.chmod(0o700)
        yield Operator(name, pw.pw_uid, pw.pw_gid, home)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def open_bus_to_everyone(mock: Any) -> None:
    """The private bus dbusmock starts admits only its own uid; a system bus admits every local user.

    Uses dbusmock's PrivateDBus internals (`_config`, the data dir): no public way changes its policy.
    """
    import dbus

    bus = mock.bus
    config: Path = bus._config
    text = config.read_text()
    if '<allow user="*"/>' not in text:
        config.write_text(
            text.replace('<policy context="default">', '<policy context="default">\n<allow user="*"/>')
        )
    Path(bus._datadir).chmod(0o711)
    conn = dbus.bus.BusConnection(mock.address)
    try:  # ReloadConfig answers once the new policy is in force
        conn.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus").ReloadConfig(
            dbus_interface="org.freedesktop.DBus"
        )
    finally:
        conn.close()


def shared_tmp(prefix: str) -> Path:
    """A directory other uids may traverse (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path
