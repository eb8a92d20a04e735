"""The watcher's X connections with the Xauthority files display managers write (issue 16: FamilyWild).

A real cookie-protected Xvfb (`-auth`), client files written by the real `xauth` tool, libX11 (xdpyinfo) as
the oracle that a file is valid, and the watcher's own connection code and process as the subject.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from Xlib import display as xdisplay
from Xlib import error as xerror

from boothguard.install.doctor import display as doctor_display
from boothguard.install.doctor.model import Probe
from boothguard.session.capabilities import probe
from boothguard.session.idle import IdleProbe
from boothguard.session.options import WatcherOptions
from boothguard.session.xconnect import FAMILY_WILD, XConnectError, open_display, pick_cookie
from tests.helpers.xvfb import xvfb
from tests.session.conftest import x_env
from tests.session.harness import Agent, WatcherProc

COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"


def xauth_tool(path: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["xauth", "-q", "-f", str(path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout


def local_file(path: Path, display: str, cookie: str) -> Path:
    """What `xauth add` writes: FamilyLocal, this hostname, this display number."""
    xauth_tool(path, "add", display, ".", cookie)
    assert xauth_tool(path, "nlist").startswith("0100 ")
    return path


def wild_file(path: Path, display: str, cookie: str) -> Path:
    """The known recipe `xauth nlist :N | sed -e 's/^..../ffff/' | xauth -f F nmerge -`: FamilyWild only."""
    local = local_file(path.with_name(path.name + ".local"), display, cookie)
    wild = "".join("ffff" + line[4:] + "\n" for line in xauth_tool(local, "nlist").splitlines())
    local.unlink()
    xauth_tool(path, "nmerge", "-", stdin=wild)
    lines = xauth_tool(path, "nlist").splitlines()
    assert lines
    assert all(line.startswith("ffff ") for line in lines), lines
    return path


def libx11_opens(display: str, authority: Path) -> bool:
    env = {**x_env(display), "XAUTHORITY": str(authority)}
    return subprocess.run(["xdpyinfo"], env=env, capture_output=True, timeout=10, check=False).returncode == 0


@pytest.fixture(scope="module")
def cookie_x(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """An Xvfb that wants a MIT-MAGIC-COOKIE-1: (display, cookie hex)."""
    if shutil.which("xauth") is None:
        pytest.skip("xauth is not installed (apt: xauth)")
    cookie = secrets.token_hex(16)
    server_auth = tmp_path_factory.mktemp("xserver") / "auth"
    xauth_tool(server_auth, "add", ":0", ".", cookie)  # the server loads every cookie of its -auth file
    with xvfb(["-auth", str(server_auth)]) as name:
        yield name, cookie


@pytest.fixture
def authority(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "Xauthority"
    monkeypatch.setenv("XAUTHORITY", str(path))
    return path


def _opts(display: str, home: Path) -> WatcherOptions:
    return WatcherOptions(
        socket_path=home / "agent.sock",
        display=display,
        wayland_display=None,
        session_id="c1",
        home=home,
        user="op",
    )


def test_wild_only_file_is_refused_by_plain_python_xlib(cookie_x: tuple[str, str], authority: Path) -> None:
    """The gap itself, and that open_display leaves other python-xlib users as they were."""
    display, cookie = cookie_x
    wild_file(authority, display, cookie)
    assert libx11_opens(display, authority)  # the file is valid: libX11 takes the FamilyWild entry
    open_display(display).close()  # installs the fallback ...
    with pytest.raises(xerror.DisplayConnectionError, match="no authorization protocol"):
        xdisplay.Display(display)  # ... for our connects only


def test_wild_only_file_opens_the_watchers_connections(
    cookie_x: tuple[str, str], authority: Path, tmp_path: Path
) -> None:
    display, cookie = cookie_x
    wild_file(authority, display, cookie)
    caps, missing = probe(_opts(display, tmp_path))
    assert "x11" not in missing, missing
    assert {"clipboard.x11", "clipboard.paste", "capture.record", "idle.x11"} <= set(caps)
    idle = IdleProbe(display)
    try:
        assert idle.query().idle_seconds >= 0
    finally:
        idle.close()
    doctor = Probe.load(None, env={"DISPLAY": display, "XAUTHORITY": str(authority)})
    (check,) = [c for c in doctor_display.checks(doctor) if c.name == "display"]
    assert check.status == "ok", check


def test_local_entry_still_works(cookie_x: tuple[str, str], authority: Path) -> None:
    display, cookie = cookie_x
    local_file(authority, display, cookie)
    d = open_display(display)
    try:
        assert d.screen().root.get_geometry().width == 1024
    finally:
        d.close()


def test_wrong_wild_cookie_is_refused_with_a_clear_error(
    cookie_x: tuple[str, str], authority: Path, tmp_path: Path
) -> None:
    display, _ = cookie_x
    wild_file(authority, display, secrets.token_hex(16))
    assert not libx11_opens(display, authority)
    with pytest.raises(XConnectError) as caught:
        open_display(display)
    text = str(caught.value)
    assert "Invalid MIT-MAGIC-COOKIE-1 key" in text, text
    assert "0xffff" in text  # which entry was offered
    assert str(authority) in text
    _, missing = probe(_opts(display, tmp_path))
    assert "Invalid MIT-MAGIC-COOKIE-1 key" in missing["x11"]


def test_no_entry_for_this_display_says_so(cookie_x: tuple[str, str], authority: Path) -> None:
    display, cookie = cookie_x
    other = f":{int(display[1:]) + 1}"
    local_file(authority, other, cookie)  # right cookie, another display: neither libX11 nor we may use it
    assert not libx11_opens(display, authority)
    with pytest.raises(XConnectError, match=f"no MIT-MAGIC-COOKIE-1 entry for display {display[1:]}"):
        open_display(display)


def test_watcher_process_runs_with_a_wild_only_file(cookie_x: tuple[str, str], tmp_path: Path) -> None:
    """End to end: `boothguard session` with a FamilyWild-only ~/.Xauthority watches the clipboard."""
    display, cookie = cookie_x
    home = tmp_path / "home"
    home.mkdir()
    authority = wild_file(home / ".Xauthority", display, cookie)
    agent = Agent(tmp_path).start()
    watcher = WatcherProc(agent, display, "c1", home, XAUTHORITY=str(authority)).start()
    copier = None
    try:
        watcher.wait_registered()
        started = agent.wait_event("session.started")
        assert {"clipboard.x11", "capture.record", "idle.x11"} <= set(started["data"]["capabilities"])
        assert started["data"]["missing_capabilities"] == {}
        env = {**x_env(display), "XAUTHORITY": str(authority)}
        copier = subprocess.Popen(
            ["xclip", "-quiet", "-selection", "clipboard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        assert copier.stdin is not None
        copier.stdin.write(b"hello from a wild cookie")
        copier.stdin.close()
        copied = agent.wait_event("clipboard.copy", lambda e: e["data"]["pid"] == copier.pid)
        assert copied["data"]["size"] == len(b"hello from a wild cookie")
    finally:
        if copier is not None:
            copier.kill()
            copier.wait(timeout=5)
        watcher.stop()
        agent.stop()


def test_pick_cookie_follows_libxau() -> None:
    host = b"booth"
    entries = [
        (256, b"other", b"5", COOKIE_NAME, b"other-host"),
        (256, host, b"6", COOKIE_NAME, b"other-display"),
        (FAMILY_WILD, b"anything", b"", b"XDM-AUTHORIZATION-1", b"other-scheme"),
        (FAMILY_WILD, b"anything", b"", COOKIE_NAME, b"wild"),
        (256, host, b"5", COOKIE_NAME, b"local-after-wild"),
    ]
    assert pick_cookie(entries, 256, host, 5) == (FAMILY_WILD, b"wild")
    assert pick_cookie(entries[4:], 256, host, 5) == (256, b"local-after-wild")
    assert pick_cookie(entries[:3], 256, host, 5) is None
