"""The agent's own X check against a real Xvfb: who runs the server, whose paths lead to its cookie."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from boothguard.lock.xcheck import XCheckError, check, read_root_owned
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
    with pytest.raises(XCheckError, match="no X server"):
        check(":4242", frozenset({0}))


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
