"""Real headless Wayland compositors: weston (no data-control protocol) and sway (wlr data-control).

Each yields the environment a client needs (`XDG_RUNTIME_DIR`, `WAYLAND_DISPLAY`) and skips the test only
where the compositor is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# sway refuses to start as root (it must be able to drop privileges for good): run it as this user.
NOBODY = 65534


def _wait_socket(proc: subprocess.Popen[bytes], runtime: Path, name: str | None, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = [p.name for p in runtime.glob(name or "wayland-*") if not p.name.endswith(".lock")]
        if found:
            return found[0]
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before its socket appeared")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args!r}: no Wayland socket in {runtime} after {timeout}s")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def weston(runtime: Path, socket: str = "wl-test") -> Iterator[dict[str, str]]:
    """weston --backend=headless-backend.so: a real compositor without any data-control protocol."""
    if shutil.which("weston") is None:
        pytest.skip("weston is not installed (apt: weston)")
    runtime.mkdir(mode=0o700, exist_ok=True)
    proc = subprocess.Popen(
        ["weston", "--backend=headless-backend.so", f"--socket={socket}", "--idle-time=0"],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        name = _wait_socket(proc, runtime, socket)
        yield {"XDG_RUNTIME_DIR": str(runtime), "WAYLAND_DISPLAY": name}
    finally:
        _stop(proc)


@contextmanager
def sway() -> Iterator[dict[str, str]]:
    """sway on wlroots' headless backend (pixman renderer, no input devices): offers wlr data-control.

    sway refuses to start as root, so under root it runs as `nobody`, with a runtime directory of its own
    in /tmp (pytest's temp dirs are private to root); clients running as root still reach its socket.
    """
    if shutil.which("sway") is None:
        pytest.skip("sway is not installed (apt: sway)")
    with tempfile.TemporaryDirectory(prefix="boothguard-sway-") as tmp:
        runtime = Path(tmp)
        runtime.chmod(0o700)
        config = runtime / "sway.config"
        config.write_text("")
        as_root = os.getuid() == 0
        if as_root:
            os.chown(runtime, NOBODY, NOBODY)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(runtime),
            "XDG_RUNTIME_DIR": str(runtime),
            "WLR_BACKENDS": "headless",
            "WLR_RENDERER": "pixman",
            "WLR_LIBINPUT_NO_DEVICES": "1",
        }
        with open(runtime / "sway.log", "wb") as log:
            proc = subprocess.Popen(
                ["sway", "--config", str(config)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=NOBODY if as_root else None,
                group=NOBODY if as_root else None,
                extra_groups=[] if as_root else None,
            )
        try:
            try:
                name = _wait_socket(proc, runtime, None)
            except RuntimeError as exc:
                tail = (runtime / "sway.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"{exc}\n{tail}") from None
            yield {"XDG_RUNTIME_DIR": str(runtime), "WAYLAND_DISPLAY": name}
        finally:
            _stop(proc)
