# ruff: noqa: RUF001 -- full-width input is part of what is copied
"""End to end: Xvfb, real X clients, `boothguard agent` and `boothguard session` as subprocesses."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.session.conftest import png_bytes, wait_for, x_env, xclip_copy, xclip_paste
from tests.session.harness import Agent, WatcherProc

CARD = "4111 1111 1111 1111"
CARD_PLAIN = "4111111111111111"
PHONE = "090-1234-5678"
MY_NUMBER = "123456789018"
SECRETS = [CARD, CARD_PLAIN, PHONE, "09012345678", MY_NUMBER, "5555555555554444", "5555 5555 5555 4444"]


@pytest.fixture(scope="module")
def stack(
    xdisplay: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Agent, WatcherProc, Path]]:
    tmp = tmp_path_factory.mktemp("e2e")
    home = tmp / "home"
    (home / "Pictures").mkdir(parents=True)
    agent = Agent(tmp, {"screenshot": {"dirs": [str(home / "Pictures")], "policy": "report"}}).start()
    watcher = WatcherProc(agent, xdisplay, "c1", home).start()
    try:
        watcher.wait_registered()
        yield agent, watcher, home
    finally:
        watcher.stop()
        agent.stop()


def _copy_event(agent: Agent, pid: int | None = None, after: int = 0, timeout: float = 15) -> dict[str, Any]:
    return agent.wait_event(
        "clipboard.copy", lambda e: e["seq"] > after and (pid is None or e["data"]["pid"] == pid), timeout
    )


def _last_seq(agent: Agent) -> int:
    events = agent.events()
    return events[-1]["seq"] if events else 0


def test_session_started_names_capabilities(stack: tuple[Agent, WatcherProc, Path]) -> None:
    agent, _, _ = stack
    ev = agent.wait_event("session.started")
    assert ev["data"]["session_id"] == "c1"
    assert {"clipboard.x11", "capture.record", "idle.x11"} <= set(ev["data"]["capabilities"])
    assert ev["data"]["missing_capabilities"] == {}


@pytest.mark.parametrize(
    ("text", "pii"),
    [
        (f"お客様カード {CARD}", {"credit_card": 1}),
        (f"個人番号 {MY_NUMBER}", {"my_number": 1}),
        (
            "携帯 ０９０ー１２３４ー５６７８ カード ５５５５ ５５５５ ５５５５ ４４４４",
            {"phone_jp": 1, "credit_card": 1},
        ),
        ("ordinary text, order 2023-01-15 12:34:56", {}),
    ],
)
def test_copy_reports_owner_formats_and_counts(
    stack: tuple[Agent, WatcherProc, Path], xdisplay: str, text: str, pii: dict[str, int]
) -> None:
    agent, _, _ = stack
    before = _last_seq(agent)
    proc = xclip_copy(xdisplay, text.encode())
    try:
        ev = _copy_event(agent, proc.pid, before)
    finally:
        proc.kill()
        proc.wait()
    d = ev["data"]
    assert d["app"] == "xclip"
    assert d["pid_source"] == "xres"
    assert "UTF8_STRING" in d["formats"]
    assert d["size"] == len(text.encode())
    assert d["pii"] == pii
    assert len(d["fingerprint"]) == 32
    assert ev["severity"] == ("high" if {"credit_card", "my_number"} & set(pii) else "info")
    assert ev["user"] == "root"


def test_one_megabyte_text_is_sized_and_scanned(
    stack: tuple[Agent, WatcherProc, Path], xdisplay: str
) -> None:
    agent, _, _ = stack
    before = _last_seq(agent)
    payload = ("x" * 1023 + "\n") * 1023 + f"tail {CARD}\n"
    proc = xclip_copy(xdisplay, payload.encode())
    try:
        ev = _copy_event(agent, proc.pid, before, timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert ev["data"]["size"] == len(payload.encode())
    assert ev["data"]["truncated"] is False
    assert ev["data"]["pii"] == {"credit_card": 1}


def test_image_copy(stack: tuple[Agent, WatcherProc, Path], xdisplay: str, tmp_path: Path) -> None:
    agent, _, _ = stack
    before = _last_seq(agent)
    png = png_bytes(tmp_path)
    proc = xclip_copy(xdisplay, png, target="image/png")
    try:
        ev = _copy_event(agent, proc.pid, before)
    finally:
        proc.kill()
        proc.wait()
    assert ev["data"]["kind"] == "image"
    assert "image/png" in ev["data"]["formats"]
    assert ev["data"]["size"] == len(png)
    assert ev["data"]["pii"] == {}


PASTERS: list[subprocess.Popen[bytes]] = []
PASTER = Path(__file__).with_name("x11_paster.py")


def _paste(display: str, name: str, selection: str = "CLIPBOARD") -> tuple[int, bytes]:
    """Paste the clipboard like an application would: a real client named `name` asking the owner
    (ConvertSelection) and staying open, as an editor does, until the end of the test (`_reap`)."""
    proc = subprocess.Popen(
        [sys.executable, str(PASTER), name, selection],
        env=x_env(display),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    PASTERS.append(proc)
    assert proc.stdout is not None
    out = b""
    while not out.endswith(b"done\n"):
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, f"paster {name} did not answer: {out!r}"
        chunk = os.read(proc.stdout.fileno(), 65536)
        assert chunk, f"paster {name} exited: {out!r}"
        out += chunk
    lines = out.splitlines()
    assert len(lines) == 2, lines
    return proc.pid, bytes.fromhex(lines[0].decode())


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    yield
    while PASTERS:
        proc = PASTERS.pop()
        proc.kill()
        proc.wait(timeout=10)


def _paste_event(agent: Agent, pid: int, after: int, timeout: float = 15) -> dict[str, Any]:
    return agent.wait_event(
        "clipboard.paste", lambda e: e["seq"] > after and e["data"]["target_pid"] == pid, timeout
    )


def test_paste_of_personal_data_is_reported_with_both_apps(
    stack: tuple[Agent, WatcherProc, Path], xdisplay: str
) -> None:
    agent, _, _ = stack
    before = _last_seq(agent)
    proc = xclip_copy(xdisplay, f"card {CARD}".encode())
    try:
        copy = _copy_event(agent, proc.pid, before)
        paster, out = _paste(xdisplay, "notes")
        assert out == f"card {CARD}".encode()  # report mode: the paste goes through
        ev = _paste_event(agent, paster, before)
    finally:
        proc.kill()
        proc.wait()
    d = ev["data"]
    assert ev["severity"] == "high"
    assert d["selection"] == "CLIPBOARD"
    assert d["target_format"] == "UTF8_STRING"
    assert (d["source_app"], d["source_pid"], d["source_allowed"]) == ("xclip", proc.pid, False)
    assert (d["target_app"], d["target_allowed"], d["target_pid_source"]) == ("notes", False, "xres")
    assert d["pii"] == {"credit_card": 1}
    assert d["fingerprint"] == copy["data"]["fingerprint"]
    # Without personal data a paste is not an event; the watcher's own reads never are.
    before = _last_seq(agent)
    proc = xclip_copy(xdisplay, b"plain words")
    try:
        _copy_event(agent, proc.pid, before)
        paster, out = _paste(xdisplay, "notes")
        assert out == b"plain words"
        proc2 = xclip_copy(xdisplay, f"again {CARD}".encode())  # a later event to wait for
        try:
            _copy_event(agent, proc2.pid, before)
            paster2, _ = _paste(xdisplay, "notes")
            _paste_event(agent, paster2, before)
        finally:
            proc2.kill()
            proc2.wait()
    finally:
        proc.kill()
        proc.wait()
    pastes = [e for e in agent.events("clipboard.paste") if e["seq"] > before]
    assert [e["data"]["target_pid"] for e in pastes] == [paster2]
    assert os.getpid() not in {e["data"]["target_pid"] for e in agent.events("clipboard.paste")}


def test_primary_selection_is_watched_by_default(
    stack: tuple[Agent, WatcherProc, Path], xdisplay: str
) -> None:
    """Selecting text owns PRIMARY and a middle-click pastes it: a copy and a paste without CLIPBOARD."""
    agent, _, _ = stack
    before = _last_seq(agent)
    proc = xclip_copy(xdisplay, f"card {CARD}".encode(), selection="primary")
    try:
        copy = _copy_event(agent, proc.pid, before)
        paster, out = _paste(xdisplay, "notes", "PRIMARY")
        assert out == f"card {CARD}".encode()
        ev = _paste_event(agent, paster, before)
    finally:
        proc.kill()
        proc.wait()
    assert copy["data"]["pii"] == {"credit_card": 1}
    assert ev["data"]["selection"] == "PRIMARY"
    assert ev["data"]["pii"] == {"credit_card": 1}


def test_forking_owner_is_found_through_its_process_group(
    stack: tuple[Agent, WatcherProc, Path], xdisplay: str
) -> None:
    """xclip takes the selection *then* forks, so the watcher may look while the parent still lives (then
    the parent, alive, is the right answer); the process-group path is proven on the first copy the
    watcher inspects after the parent has gone."""
    agent, _, _ = stack
    for _attempt in range(8):
        before = _last_seq(agent)
        parent = xclip_copy(xdisplay, f"fork {CARD}".encode(), quiet=False)
        parent.wait(timeout=10)  # plain xclip forks: the parent exits, its child owns the selection
        d = _copy_event(agent, None, before)["data"]
        subprocess.run(["pkill", "-g", str(parent.pid)], check=False)  # the orphaned child, by its group
        assert d["app"] == "xclip"
        assert d["pii"] == {"credit_card": 1}
        if not d["owner_exited"]:
            assert d["pid"] == parent.pid  # looked before the fork's parent exited: it was the owner
            continue
        assert d["pid"] != parent.pid
        assert d["pid_source"] == "process_group"
        return
    pytest.fail("the watcher never inspected a forking owner after its parent exited (8 tries)")


def test_owner_that_exits_at_once_is_still_reported(
    stack: tuple[Agent, WatcherProc, Path], xdisplay: str
) -> None:
    agent, _, _ = stack
    before = _last_seq(agent)
    # Takes the selection and exits immediately after serving nothing: the owner is gone when we look.
    code = (
        "from Xlib import display, X\n"
        "d = display.Display()\n"
        "w = d.screen().root.create_window(0,0,1,1,0,X.CopyFromParent)\n"
        "w.set_selection_owner(d.intern_atom('CLIPBOARD'), X.CurrentTime)\n"
        "d.sync()\n"
    )
    import sys

    owner = subprocess.Popen([sys.executable, "-c", code], env=x_env(xdisplay))
    assert owner.wait(timeout=20) == 0
    ev = _copy_event(agent, None, before)
    d = ev["data"]
    # Depending on the race the owner is seen alive (then never answers) or already gone.
    assert d["owner_exited"] is True or d["pid"] == owner.pid
    assert d["formats"] == []
    assert d["kind"] == "none"


def test_capture_clients_are_caught_with_their_pid(
    stack: tuple[Agent, WatcherProc, Path], xdisplay: str, tmp_path: Path
) -> None:
    agent, _, _ = stack
    for argv, request in (
        (["xwd", "-root", "-out", str(tmp_path / "a.xwd")], "GetImage"),
        (["scrot", "-o", str(tmp_path / "b.png")], "ShmGetImage"),
        (["import", "-window", "root", str(tmp_path / "c.png")], "GetImage"),
    ):
        before = _last_seq(agent)
        proc = subprocess.Popen(
            argv, env=x_env(xdisplay), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        proc.wait(timeout=60)
        ev = agent.wait_event(
            "screenshot.detected",
            lambda e, pid=proc.pid, since=before: (
                e["seq"] > since and e["data"]["method"] == "record" and e["data"]["pid"] == pid
            ),
        )
        assert ev["data"]["app"] == argv[0]
        assert ev["data"]["what"]["request"] == request
        assert ev["data"]["what"]["root"] is True


def test_screen_read_as_small_tiles_adds_up_to_a_capture(
    stack: tuple[Agent, WatcherProc, Path], xdisplay: str
) -> None:
    """Issue 14: 64x63 GetImage tiles (4032 px, each under min_pixels 4096) covering the screen."""
    agent, _, _ = stack
    before = _last_seq(agent)
    tiler = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("x11_tiler.py"))],
        env=x_env(xdisplay),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert tiler.stdout is not None
        assert tiler.stdout.readline().startswith(b"tiles ")
        ev = agent.wait_event(
            "screenshot.detected",
            lambda e: e["seq"] > before and e["data"]["method"] == "record" and e["data"]["pid"] == tiler.pid,
        )
    finally:
        tiler.kill()
        tiler.wait(timeout=10)
    what = ev["data"]["what"]
    assert (what["request"], what["root"], what["width"], what["height"]) == ("GetImage", True, 64, 63)
    assert what["pixels"] >= 4096
    assert what["requests"] >= 2


def test_file_dropped_into_screenshot_dir(stack: tuple[Agent, WatcherProc, Path], tmp_path: Path) -> None:
    agent, _, home = stack
    before = _last_seq(agent)
    (home / "Pictures" / "Screenshot from 2026-01-01.png").write_bytes(png_bytes(tmp_path))
    ev = agent.wait_event(
        "screenshot.detected", lambda e: e["seq"] > before and e["data"]["method"] == "file"
    )
    assert ev["data"]["what"]["file"] == "Screenshot from 2026-01-01.png"


def test_capture_tool_process_is_seen(stack: tuple[Agent, WatcherProc, Path], tmp_path: Path) -> None:
    agent, _, _ = stack
    before = _last_seq(agent)
    fake_tool = tmp_path / "simplescreenrecorder"
    fake_tool.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(fake_tool), "5"])
    try:
        ev = agent.wait_event(
            "screenshot.detected",
            lambda e: e["seq"] > before and e["data"]["method"] == "process" and e["data"]["pid"] == proc.pid,
        )
    finally:
        proc.kill()
        proc.wait()
    assert ev["data"]["what"]["tool"] == "simplescreenrecorder"


def test_heartbeat_carries_idle_time(stack: tuple[Agent, WatcherProc, Path]) -> None:
    agent, _, _ = stack
    from boothguard.agent.client import request

    def idle() -> Any:
        watchers = request(agent.socket, "status")["sessions"]["watchers"]
        return watchers[0]["idle_seconds"] if watchers else None

    assert wait_for(lambda: isinstance(idle(), float | int), 10)
    status = request(agent.socket, "status")["sessions"]["watchers"][0]
    assert status["alive"] is True
    assert status["screensaver_active"] is False


def test_privacy_no_copied_text_anywhere(stack: tuple[Agent, WatcherProc, Path]) -> None:
    """Runs after the copies above (file order): not in events, not in the spool file, not in logs."""
    agent, watcher, _ = stack
    assert agent.events("clipboard.copy"), "the copy tests must have run first"
    blobs = [
        (agent.state_dir / name).read_bytes()
        for name in ("spool.db", "spool.db-wal")
        if (agent.state_dir / name).exists()
    ]
    events_text = "\n".join(str(e) for e in agent.events())
    logs = "\n".join(agent.lines + watcher.lines)
    for secret in SECRETS:
        assert secret not in events_text
        assert secret not in logs
        for blob in blobs:
            assert secret.encode() not in blob


def test_agent_restart_watcher_reconnects(xdisplay: str, tmp_path: Path) -> None:
    agent = Agent(tmp_path).start()
    watcher = WatcherProc(agent, xdisplay, "c2", tmp_path / "home").start()
    try:
        watcher.wait_registered()
        agent.stop()
        agent.start()
        watcher.wait_registered(2)
        ev = agent.wait_event("session.started", lambda e: e["data"]["reconnect"] is True)
        assert ev["data"]["session_id"] == "c2"
        proc = xclip_copy(xdisplay, b"after restart")
        try:
            assert _copy_event(agent, proc.pid)["data"]["size"] == 13
        finally:
            proc.kill()
            proc.wait()
    finally:
        watcher.stop()
        agent.stop()


def test_killed_watcher_is_noticed(xdisplay: str, tmp_path: Path) -> None:
    agent = Agent(tmp_path).start()
    watcher = WatcherProc(agent, xdisplay, "c3", tmp_path / "home").start()
    try:
        watcher.wait_registered()
        watcher.stop(signal.SIGKILL)
        ev = agent.wait_event("session.watcher_missing")
        assert ev["data"]["session_id"] == "c3"
        assert ev["data"]["reason"] == "disconnected"
        assert ev["severity"] == "high"
        # SIGTERM while the display is up is not a clean goodbye either.
        watcher2 = WatcherProc(agent, xdisplay, "c3", tmp_path / "home").start()
        watcher2.wait_registered()
        agent.wait_event("session.started", lambda e: e["data"]["watcher_back"] is True)
        watcher2.stop(signal.SIGTERM)
        ev = agent.wait_event("session.watcher_missing", lambda e: e["data"]["reason"] == "stopped:signal")
        assert ev["data"]["session_id"] == "c3"
    finally:
        agent.stop()


def test_clear_policy_empties_the_clipboard(xdisplay: str, tmp_path: Path) -> None:
    agent = Agent(tmp_path, {"clipboard": {"policy": "clear", "allow_apps": ["crm-app"]}}).start()
    watcher = WatcherProc(agent, xdisplay, "c4", tmp_path / "home").start()
    try:
        watcher.wait_registered()
        proc = xclip_copy(xdisplay, f"card {CARD}".encode())
        try:
            ev = agent.wait_event("clipboard.cleared")
            assert ev["data"]["ok"] is True
            assert ev["data"]["pii"] == {"credit_card": 1}
            assert xclip_paste(xdisplay) == b""
            assert proc.wait(timeout=10) == 0  # xclip -quiet exits when it loses the selection
        finally:
            proc.kill()
            proc.wait()
        # No personal data: left alone.
        before = _last_seq(agent)
        proc = xclip_copy(xdisplay, b"hello")
        try:
            _copy_event(agent, proc.pid, before)
            assert xclip_paste(xdisplay) == b"hello"
        finally:
            proc.kill()
            proc.wait()
    finally:
        watcher.stop()
        agent.stop()


def test_kill_and_quarantine_policy(xdisplay: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shots = home / "Pictures"
    shots.mkdir(parents=True)
    agent = Agent(tmp_path, {"screenshot": {"policy": "quarantine", "dirs": [str(shots)]}}).start()
    watcher = WatcherProc(agent, xdisplay, "c5", home).start()
    try:
        watcher.wait_registered()
        dropped = shots / "capture.png"
        dropped.write_bytes(png_bytes(tmp_path))
        ev = agent.wait_event("screenshot.blocked", lambda e: e["data"]["action"] == "quarantine")
        assert ev["data"]["ok"] is True, ev
        assert not dropped.exists()
        qdir = agent.state_dir / "quarantine"
        assert (qdir.stat().st_mode & 0o777) == 0o700
        assert [p.name for p in qdir.iterdir()] == [ev["data"]["quarantined"]]
        # A long-running recorder is killed.
        recorder = tmp_path / "obs"
        recorder.symlink_to("/bin/sleep")
        proc = subprocess.Popen([str(recorder), "30"])
        try:
            ev = agent.wait_event(
                "screenshot.blocked", lambda e: e["data"]["action"] == "kill" and e["data"]["pid"] == proc.pid
            )
            assert ev["data"]["ok"] is True
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            proc.kill()
            proc.wait()
    finally:
        watcher.stop()
        agent.stop()


def test_allow_list_is_between_apps(xdisplay: str, tmp_path: Path) -> None:
    """allow_apps = ["xclip", "crm"]: xclip → crm is quiet; xclip → another app, and another app → crm, are
    `clipboard.paste` high. The other copying app is xclip under another name (`texteditor`)."""
    xclip = shutil.which("xclip")
    assert xclip is not None
    editor = tmp_path / "texteditor"
    shutil.copy(xclip, editor)
    agent = Agent(tmp_path, {"clipboard": {"allow_apps": ["xclip", "crm"]}}).start()
    watcher = WatcherProc(agent, xdisplay, "c6", tmp_path / "home").start()
    try:
        watcher.wait_registered()
        proc = xclip_copy(xdisplay, f"crm {CARD}".encode())
        try:
            copy = _copy_event(agent, proc.pid)
            assert copy["severity"] == "info"
            assert copy["data"]["allowed_app"] is True
            quiet, out = _paste(xdisplay, "crm")  # CRM → CRM
            assert out == f"crm {CARD}".encode()
            crm = PASTERS.pop()
            assert crm.stdin is not None
            crm.stdin.close()  # it disconnects: the server hands its resource base to the next client
            crm.wait(timeout=10)
            outside, out = _paste(xdisplay, "texteditor")  # CRM → elsewhere
            assert out == f"crm {CARD}".encode()
            ev = _paste_event(agent, outside, 0)
        finally:
            proc.kill()
            proc.wait()
        assert ev["severity"] == "high"
        d = ev["data"]
        assert (d["source_app"], d["source_allowed"]) == ("xclip", True)
        assert (d["target_app"], d["target_allowed"]) == ("texteditor", False)
        assert d["pii"] == {"credit_card": 1}
        assert d["fingerprint"] == copy["data"]["fingerprint"]
        # Pastes are reported in the order they came: the allowed one before would be there by now.
        assert quiet not in {e["data"]["target_pid"] for e in agent.events("clipboard.paste")}
        # Elsewhere → CRM: the copy is not allowed, so its paste into the CRM is reported too.
        before = _last_seq(agent)
        other = subprocess.Popen(
            [str(editor), "-quiet", "-selection", "clipboard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=x_env(xdisplay),
            start_new_session=True,
        )
        assert other.stdin is not None
        other.stdin.write(f"note {PHONE}".encode())
        other.stdin.close()
        try:
            copy = _copy_event(agent, other.pid, before)
            assert copy["data"]["app"] == "texteditor"
            assert copy["data"]["allowed_app"] is False
            into_crm, _ = _paste(xdisplay, "crm")
            ev = _paste_event(agent, into_crm, before)
        finally:
            other.kill()
            other.wait()
        d = ev["data"]
        assert ev["severity"] == "high"
        assert (d["source_app"], d["source_allowed"], d["target_app"], d["target_allowed"]) == (
            "texteditor",
            False,
            "crm",
            True,
        )
        assert d["pii"] == {"phone_jp": 1}
        events_text = "\n".join(str(e) for e in agent.events())
        assert CARD not in events_text
        assert PHONE not in events_text
    finally:
        watcher.stop()
        agent.stop()
