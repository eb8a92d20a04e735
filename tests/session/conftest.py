"""A real Xvfb per test module, and real X clients (xclip, scrot, xwd, import) to drive it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.xvfb import xvfb


@pytest.fixture(scope="module")
def xdisplay() -> Iterator[str]:
    with xvfb() as name:
        yield name


def x_env(display: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "XAUTHORITY")}
    env.update(DISPLAY=display, **extra)
    return env


def xclip_copy(
    display: str, data: bytes, target: str | None = None, *, quiet: bool = True, selection: str = "clipboard"
) -> subprocess.Popen[bytes]:
    """Own the selection with `data`, like an application's copy. quiet=False forks (the parent exits)."""
    argv = ["xclip", "-selection", selection]
    if quiet:
        argv.insert(1, "-quiet")
    if target:
        argv += ["-t", target]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=x_env(display),
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.close()
    return proc


def xclip_paste(display: str) -> bytes:
    """What an application pasting from the clipboard would get."""
    return subprocess.run(
        ["xclip", "-o", "-selection", "clipboard"],
        env=x_env(display),
        capture_output=True,
        timeout=10,
        check=False,
    ).stdout


def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


def png_bytes(tmp: Path) -> bytes:
    path = tmp / "img.png"
    subprocess.run(["convert", "-size", "32x32", "xc:red", str(path)], check=True, timeout=30)
    return path.read_bytes()
