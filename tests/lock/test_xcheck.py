"""The agent's own X check against a real Xvfb: who runs the server, whose paths lead to its cookie."""

from __future__ import annotations

import os
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from boothguard.lock.xcheck import XCheckError, check, pick_cookie, read_root_owned
from tests.helpers.xauth import xauth_entry
from tests.helpers.xvfb import start_xvfb, xvfb

NOBODY = 65534


@pytest.fixture
def rootdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bg-xcheck-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_unlocked_server_answers_and_untrusted_or_remote_servers_are_refused() -> None:
    with xvfb() as display:
        state = check(display, frozenset({0}))
        assert (state.keyboard, state.grabbed, state.screensaver) == ("success", False, "off")
        assert state.server_uid == 0
        with pytest.raises(XCheckError, match="not a trusted uid"):
            check(display, frozenset({1000}))  # as if the operator ran the server (rootless Xorg)
    with pytest.raises(XCheckError, match="not a local display"):
        check("localhost:10.0", frozenset({0}))  # ssh-forwarded: not the booth's screen
    with pytest.raises(
        XCheckError,
        match=r"display :4242: @/tmp/\.X11-unix/X4242: Connection refused; /tmp/\.X11-unix/X4242: No such",
    ):
        check(":4242", frozenset({0}))


def test_a_squatted_abstract_socket_does_not_hide_the_real_server() -> None:
    # The server listens on its path only (-nolisten local); another uid holds the abstract name: the check
    # skips the impostor and asks the real server rather than giving up (which would let a bare hint count).
    for _ in range(5):  # a display whose abstract name is taken already (another test run's) is no test
        proc, display = start_xvfb(["-nolisten", "local"])
        if f"@/tmp/.X11-unix/X{display.lstrip(':')}" not in Path("/proc/net/unix").read_text():
            break
        proc.terminate()
        proc.wait(timeout=10)
    squatter = None
    try:
        name = f"/tmp/.X11-unix/X{display.lstrip(':')}"
        code = (
            "import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(chr(0) + sys.argv[1]); "
            "s.listen(8); print('up', flush=True); sys.stdin.read()"
        )
        squatter = subprocess.Popen(
            [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                sys.executable,
                "-c",
                code,
                name,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert squatter.stdout is not None
        assert squatter.stdout.readline() == "up\n"
        state = check(display, frozenset({0}))
        assert (state.server_uid, state.server_pid, state.keyboard) == (0, proc.pid, "success")
        with pytest.raises(XCheckError, match=f"runs as uid {NOBODY}, not a trusted uid"):
            check(display, frozenset({4242}))
    finally:
        if squatter is not None:
            squatter.kill()
            squatter.wait(timeout=10)
        proc.terminate()
        proc.wait(timeout=10)


def test_the_cookie_comes_only_through_root_owned_paths(rootdir: Path) -> None:
    cookie = secrets.token_bytes(16)
    (rootdir / "auth").write_bytes(xauth_entry(cookie))
    assert read_root_owned(str(rootdir / "auth")) == xauth_entry(cookie)

    # a symlink the operator owns, or a directory the operator may write, could be swapped: refused
    (rootdir / "link").symlink_to(rootdir / "auth")
    os.lchown(rootdir / "link", NOBODY, NOBODY)
    with pytest.raises(XCheckError, match="symlink link not owned by root"):
        read_root_owned(str(rootdir / "link"))
    theirs = rootdir / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    (theirs / "auth").write_bytes(xauth_entry(cookie))
    with pytest.raises(XCheckError, match="not root-owned"):
        read_root_owned(str(theirs / "auth"))
    open_dir = rootdir / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # writable by all, not sticky
    (open_dir / "auth").write_bytes(xauth_entry(cookie))
    with pytest.raises(XCheckError, match="writable by others"):
        read_root_owned(str(open_dir / "auth"))
    # a root-owned symlink is followed (/var/run → /run)
    (rootdir / "rootlink").symlink_to(rootdir / "auth")
    assert read_root_owned(str(rootdir / "rootlink")) == xauth_entry(cookie)


def test_a_server_with_an_auth_file_is_reached_with_its_own_cookie(rootdir: Path) -> None:
    (rootdir / "auth").write_bytes(xauth_entry(secrets.token_bytes(16)))
    proc, display = start_xvfb(["-auth", str(rootdir / "auth")])
    try:
        assert check(display, frozenset({0})).keyboard == "success"
        # the same server's cookie kept where the operator could swap it is not used: no connection
        theirs = rootdir / "theirs"
        theirs.mkdir()
        os.chown(theirs, NOBODY, NOBODY)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    (theirs / "auth").write_bytes(xauth_entry(secrets.token_bytes(16)))
    proc, display = start_xvfb(["-auth", str(theirs / "auth")])
    try:
        with pytest.raises(XCheckError, match="not root-owned"):
            check(display, frozenset({0}))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_cookie_for_the_display_is_picked() -> None:
    def entry(family: int, number: bytes, name: bytes, cookie: bytes) -> bytes:
        out = struct.pack(">H", family)
        for field in (b"booth", number, name, cookie):
            out += struct.pack(">H", len(field)) + field
        return out

    data = entry(256, b"3", b"MIT-MAGIC-COOKIE-1", b"three") + entry(256, b"5", b"XDM-AUTHORIZATION-1", b"x")
    data += entry(256, b"5", b"MIT-MAGIC-COOKIE-1", b"five")
    assert pick_cookie(data, 5) == b"five"
    assert pick_cookie(data + xauth_entry(b"any"), 7) == b"any"  # an entry for every display
    with pytest.raises(XCheckError, match="no MIT-MAGIC-COOKIE-1"):
        pick_cookie(data, 7)
