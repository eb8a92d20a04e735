# ruff: noqa: RUF001 -- full-width input is part of what is copied
"""End to end on real headless Wayland compositors, with no X display: `boothguard agent` and
`boothguard session` as subprocesses.

weston offers no data-control protocol: the watcher must say the clipboard is not watched (and that
capture requests and idle time have no source) and start no wl-paste. sway (wlroots) offers
zwlr_data_control_manager_v1: `wl-copy` of a card number must yield `clipboard.copy` with the counts and
never the text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers.wayland import sway, weston
from tests.session.conftest import png_bytes, wait_for
from tests.session.harness import Agent, WatcherProc

CARD = "4111 1111 1111 1111"
PHONE = "090-1234-5678"
SECRETS = [CARD, "4111111111111111", PHONE, "09012345678", "５５５５", "5555555555554444"]


def _descendants(pid: int) -> list[str]:
    try:
        return [c.name() for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _last_seq(agent: Agent) -> int:
    events = agent.events()
    return int(events[-1]["seq"]) if events else 0


def _wl(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "XAUTHORITY")}
    return {**base, **env}


def _wl_copy(env: dict[str, str], data: bytes, mime: str | None = None) -> subprocess.Popen[bytes]:
    """Own the clipboard like an application's copy; --foreground keeps serving it until killed."""
    if shutil.which("wl-copy") is None:
        pytest.skip("wl-copy is not installed (apt: wl-clipboard)")
    argv = ["wl-copy", "--foreground"] + (["--type", mime] if mime else [])
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_wl(env)
    )
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.close()
    return proc


def _stack(
    tmp: Path, wl_env: dict[str, str], sections: dict[str, dict[str, Any]] | None = None
) -> tuple[Agent, WatcherProc]:
    agent = Agent(tmp, sections).start()
    watcher = WatcherProc(agent, None, "w1", tmp / "home", **wl_env).start()
    try:
        watcher.wait_registered()
    except BaseException:
        watcher.stop()
        agent.stop()
        raise
    return agent, watcher


# -- weston: no data-control ----------------------------------------------------------------------------


def test_weston_without_data_control_reports_the_clipboard_missing(tmp_path: Path) -> None:
    with weston(tmp_path / "xdg") as wl_env:
        agent, watcher = _stack(tmp_path, wl_env)
        try:
            ev = agent.wait_event("session.started")
            children = _descendants(watcher.pid)
        finally:
            watcher.stop()
            agent.stop()
    data = ev["data"]
    assert data["session_id"] == "w1"
    assert data["display"] == wl_env["WAYLAND_DISPLAY"]
    caps, missing = set(data["capabilities"]), data["missing_capabilities"]
    assert not {c for c in caps if c.startswith("clipboard")}, caps
    assert "capture.record" not in caps
    assert "idle.x11" not in caps
    assert {"capture.process", "capture.files"} <= caps  # what does work without X
    assert "data-control" in missing["clipboard"]
    assert "not watched" in missing["clipboard"]
    assert "Wayland" in missing["capture.record"]
    assert "idle" in missing
    assert "display" not in missing  # the compositor was found and answered
    assert ev["severity"] == "low"  # a session with missing capabilities is not "info"
    assert "wl-paste" not in children, children
    assert not watcher.logged("wl_paste_watching")
    assert not agent.events("clipboard.copy")


# -- sway: wlr data-control -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sway_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Agent, WatcherProc, dict[str, str]]]:
    if shutil.which("wl-paste") is None:
        pytest.skip("wl-paste is not installed (apt: wl-clipboard)")
    tmp = tmp_path_factory.mktemp("wl")
    with sway() as wl_env:
        # `clear` is configured but cannot be applied on Wayland: every copy must say it was only reported.
        agent, watcher = _stack(tmp, wl_env, {"clipboard": {"policy": "clear"}})
        try:
            # Sources start once registered: copies before wl-paste connects would not be seen.
            assert wait_for(lambda: watcher.logged("wl_paste_watching"), 15), watcher.lines[-20:]
            yield agent, watcher, wl_env
        finally:
            watcher.stop()
            agent.stop()


def _copy_after(agent: Agent, before: int, timeout: float = 15) -> dict[str, Any]:
    return agent.wait_event("clipboard.copy", lambda e: e["seq"] > before, timeout)


def test_sway_session_watches_the_clipboard(sway_stack: tuple[Agent, WatcherProc, dict[str, str]]) -> None:
    agent, watcher, _ = sway_stack
    ev = agent.wait_event("session.started")
    assert "clipboard.wayland" in ev["data"]["capabilities"]
    assert "clipboard" not in ev["data"]["missing_capabilities"]
    assert "wl-paste" in _descendants(watcher.pid)


@pytest.mark.parametrize(
    ("text", "pii", "severity"),
    [
        (f"お客様カード {CARD}", {"credit_card": 1}, "high"),
        (
            "携帯 ０９０ー１２３４ー５６７８ カード ５５５５ ５５５５ ５５５５ ４４４４",
            {"phone_jp": 1, "credit_card": 1},
            "high",
        ),
        (f"tel {PHONE}", {"phone_jp": 1}, "medium"),
        ("ordinary text, order 2023-01-15 12:34:56", {}, "info"),
    ],
)
def test_wl_copy_yields_counts_never_text(
    sway_stack: tuple[Agent, WatcherProc, dict[str, str]], text: str, pii: dict[str, int], severity: str
) -> None:
    agent, _, wl_env = sway_stack
    before = _last_seq(agent)
    proc = _wl_copy(wl_env, text.encode())
    try:
        ev = _copy_after(agent, before)
    finally:
        proc.kill()
        proc.wait()
    d = ev["data"]
    assert d["pii"] == pii
    assert d["kind"] == "text"
    assert "text/plain" in d["formats"] or "text/plain;charset=utf-8" in d["formats"], d["formats"]
    assert d["size"] == len(text.encode())
    assert d["truncated"] is False
    assert len(d["fingerprint"]) == 32
    assert d["app"] is None
    assert d["pid"] is None
    assert d["pid_source"] == "none"
    assert d["policy"] == "report"
    assert ev["severity"] == severity
    assert not agent.events("clipboard.cleared")


def test_wl_copy_of_an_image_is_sized_not_scanned(
    sway_stack: tuple[Agent, WatcherProc, dict[str, str]], tmp_path: Path
) -> None:
    agent, _, wl_env = sway_stack
    png = png_bytes(tmp_path)
    before = _last_seq(agent)
    proc = _wl_copy(wl_env, png, "image/png")
    try:
        ev = _copy_after(agent, before)
    finally:
        proc.kill()
        proc.wait()
    d = ev["data"]
    assert d["formats"] == ["image/png"]
    assert d["kind"] == "image"
    assert d["size"] == len(png)
    assert d["pii"] == {}
    assert d["fingerprint"] is None


def test_no_copied_secret_reaches_events_spool_or_logs(
    sway_stack: tuple[Agent, WatcherProc, dict[str, str]],
) -> None:
    agent, watcher, wl_env = sway_stack
    before = _last_seq(agent)
    proc = _wl_copy(wl_env, f"last {CARD} {PHONE}".encode())
    try:
        _copy_after(agent, before)
    finally:
        proc.kill()
        proc.wait()
    spool = b"".join(p.read_bytes() for p in agent.state_dir.glob("spool.db*"))
    logs = "\n".join(agent.lines + watcher.lines)
    for secret in SECRETS:
        assert secret.encode() not in spool, secret
        assert secret not in logs, secret
        assert all(secret not in str(e) for e in agent.events()), secret


def test_compositor_gone_ends_the_session(tmp_path: Path) -> None:
    """wl-paste exits with the compositor; the watcher checks the compositor is gone and says goodbye."""
    if shutil.which("wl-paste") is None:
        pytest.skip("wl-paste is not installed (apt: wl-clipboard)")
    agent: Agent | None = None
    watcher: WatcherProc | None = None
    try:
        with sway() as wl_env:
            agent, watcher = _stack(tmp_path, wl_env)
            agent.wait_event("session.started")
        ev = agent.wait_event("session.ended", timeout=20)
        assert ev["data"]["reason"] == "display_closed"
        assert watcher.proc is not None
        assert watcher.proc.wait(timeout=15) == 0
        assert not agent.events("session.watcher_missing")
        # The watcher got the agent's answer to its goodbye (the link stays up until then).
        assert any('"goodbye": true' in line for line in watcher.lines), watcher.lines[-10:]
    finally:
        if watcher is not None:
            watcher.stop()
        if agent is not None:
            agent.stop()
