"""`boothguard doctor` against this machine and against real components the test starts.

On this container there is no /sys/bus/usb, no system bus with logind and no display: doctor must say so,
check by check, and exit 1. With a real Xvfb, dbus-daemon (dbusmock's logind), agent and collector it must
report what each of them offers.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.agent import AgentProcess, write_config
from tests.helpers.wayland import sway, weston
from tests.helpers.xvfb import xvfb as start_x

HAS_USB = Path("/sys/bus/usb/devices").is_dir()
STRIP = (
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_RUNTIME_DIR",
    "DBUS_SYSTEM_BUS_ADDRESS",
)


def doctor(config: Path, root: Path, env: dict[str, str]) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    base = {k: v for k, v in os.environ.items() if k not in STRIP}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "boothguard",
            "doctor",
            "--json",
            "--timeout",
            "3",
            "--config",
            str(config),
            "--root",
            str(root),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={**base, **env},
    )
    assert proc.returncode in (0, 1), proc.stderr
    checks: dict[str, list[dict[str, Any]]] = {}
    for check in json.loads(proc.stdout)["checks"]:
        checks.setdefault(check["name"], []).append(check)
    return proc.returncode, checks


def status(checks: dict[str, list[dict[str, Any]]], name: str) -> str:
    assert name in checks, sorted(checks)
    return str(checks[name][0]["status"])


def agent_config(tmp: Path, **sections: dict[str, Any]) -> Path:
    base: dict[str, dict[str, Any]] = {
        "agent": {
            "state_dir": str(tmp / "state"),
            "runtime_dir": str(tmp / "run"),
            "heartbeat_seconds": 3600,
        },
        "usb": {"mode": "enforce"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return write_config(tmp / "agent.toml", base)


def test_container_reports_exactly_what_is_missing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    config = agent_config(tmp_path)
    rc, checks = doctor(config, root, {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"})
    assert rc == 1
    assert status(checks, "config") == "ok"
    assert status(checks, "agent") == "fail"
    assert "not running" in checks["agent"][0]["detail"]
    assert checks["agent"][0]["fix"]
    if not HAS_USB:
        assert status(checks, "usb") == "fail"
        assert "/sys/bus/usb" in checks["usb"][0]["detail"]
    assert status(checks, "logind") == "fail"
    assert "system bus not reachable" in checks["logind"][0]["detail"]
    assert status(checks, "display") == "fail"
    assert "no display server" in checks["display"][0]["detail"]
    assert "watch clipboard" not in checks
    assert status(checks, "notifications") == "warn"
    assert status(checks, "collector") == "warn"
    assert status(checks, "install") == "warn"
    assert status(checks, "spool") == "warn"
    failed = sorted(n for n, cs in checks.items() if any(c["status"] == "fail" for c in cs))
    expected = ["agent", "display", "logind"] + ([] if HAS_USB else ["usb"])
    assert failed == expected
    for cs in checks.values():
        for c in cs:
            assert c["status"] == "ok" or c["fix"] or c["name"] in ("usb boot",), c


def test_invalid_config_fails_with_the_problem(tmp_path: Path) -> None:
    config = agent_config(tmp_path, usb={"mode": "sometimes"})
    rc, checks = doctor(config, tmp_path, {})
    assert rc == 1
    assert status(checks, "config") == "fail"
    assert "usb.mode" in checks["config"][0]["detail"]


def test_audit_mode_is_a_warning(tmp_path: Path) -> None:
    config = agent_config(tmp_path, usb={"mode": "audit"})
    _, checks = doctor(config, tmp_path, {})
    assert status(checks, "config") == "warn"
    assert "enforce" in checks["config"][0]["fix"]


# -- real components ------------------------------------------------------------------------------------


@pytest.fixture
def xvfb() -> Iterator[str]:
    with start_x(screen="640x480x24") as name:
        yield name


def test_x11_capabilities_under_xvfb(tmp_path: Path, xvfb: str) -> None:
    config = agent_config(tmp_path)
    _, checks = doctor(config, tmp_path, {"DISPLAY": xvfb})
    assert status(checks, "display") == "ok"
    exts = checks["display"][0]["facts"]["extensions"]
    # Xvfb offers all of these; the watcher needs them for clipboard owners, capture requests and idle time.
    assert {"XFIXES", "X-Resource", "RECORD", "MIT-SCREEN-SAVER"} <= set(exts)
    assert status(checks, "watch clipboard") == "ok"
    assert status(checks, "watch captures") == "ok"
    assert status(checks, "watch idle") == "ok"


def test_x11_without_record_degrades_captures(tmp_path: Path) -> None:
    with start_x(["-extension", "RECORD", "-extension", "XFIXES"]) as display:
        _, checks = doctor(agent_config(tmp_path), tmp_path, {"DISPLAY": display})
    assert "RECORD" not in checks["display"][0]["facts"]["extensions"]
    assert status(checks, "watch captures") == "warn"
    assert status(checks, "watch clipboard") == "fail"


def test_logind_on_a_real_bus(tmp_path: Path) -> None:
    try:
        from tests.lock.mocklogind import MockLogind
    except ImportError as exc:
        pytest.skip(f"python-dbusmock/dbus-python not installed: {exc}")
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed")
    mock = MockLogind()
    try:
        mock.add_session("c1", 1000, "alice")
        _, checks = doctor(agent_config(tmp_path), tmp_path, {"DBUS_SYSTEM_BUS_ADDRESS": mock.address})
        assert status(checks, "logind") == "ok", checks["logind"]
        assert checks["logind"][0]["facts"] == {"sessions": 1, "users": ["alice"]}
        mock.stop_logind()
        _, checks = doctor(agent_config(tmp_path), tmp_path, {"DBUS_SYSTEM_BUS_ADDRESS": mock.address})
        assert status(checks, "logind") == "fail"
        assert "not on the system bus" in checks["logind"][0]["detail"]
    finally:
        mock.close()


def test_notification_service_on_a_session_bus(tmp_path: Path) -> None:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed")
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1", f"--address=unix:path={tmp_path}/bus"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().strip()
        assert address
        env = {"DBUS_SESSION_BUS_ADDRESS": address}
        _, checks = doctor(agent_config(tmp_path), tmp_path, env)
        assert status(checks, "notifications") == "warn"
        assert "no org.freedesktop.Notifications" in checks["notifications"][0]["detail"]

        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        conn = open_dbus_connection(bus=address)
        try:
            reply = conn.send_and_get_reply(
                message_bus.RequestName("org.freedesktop.Notifications"), timeout=5
            )
            assert reply.body[0] == 1  # primary owner
            _, checks = doctor(agent_config(tmp_path), tmp_path, env)
            assert status(checks, "notifications") == "ok"
        finally:
            conn.close()
    finally:
        bus.terminate()
        bus.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_running_agent_spool_and_collector(tmp_path: Path) -> None:
    """The real agent (spool on disk) and the real collector (/healthz), then the token that enroll writes."""
    port = free_port()
    col = tmp_path / "collector"
    col.mkdir()
    (col / "enroll.secret").write_text("s3cret\n")
    col_config = write_config(
        col / "collector.toml",
        {
            "collector": {
                "listen": f"127.0.0.1:{port}",
                "database_url": f"sqlite:///{col}/events.db",
                "enroll_secret_file": str(col / "enroll.secret"),
            }
        },
    )
    collector = subprocess.Popen(
        [sys.executable, "-m", "boothguard", "collector", "--config", str(col_config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", sections={"ship": {"collector_url": f"http://127.0.0.1:{port}"}})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert collector.poll() is None, "collector exited"
            time.sleep(0.1)
        agent.start()
        _, checks = doctor(agent.config, tmp_path, {})
        assert status(checks, "agent") == "ok"
        assert status(checks, "spool") == "ok", checks["spool"]
        assert checks["spool"][0]["facts"]["depth"] >= 1  # agent.started, not shipped without a token
        assert status(checks, "collector") == "ok", checks["collector"]
        assert status(checks, "token") == "fail"
        assert "enroll" in checks["token"][0]["fix"]

        (agent.state_dir / "host.token").write_text("token-from-enroll\n")
        _, checks = doctor(agent.config, tmp_path, {})
        assert status(checks, "token") == "ok"

        agent.stop()
        collector.terminate()
        collector.wait(timeout=10)
        _, checks = doctor(agent.config, tmp_path, {})
        assert status(checks, "agent") == "fail"
        assert status(checks, "collector") == "fail"
        assert "unreachable" in checks["collector"][0]["detail"]
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.kill()
        if collector.poll() is None:
            collector.kill()
            collector.wait(timeout=10)


def test_wayland_compositor_without_data_control(tmp_path: Path) -> None:
    """A real compositor (weston, headless): doctor lists its globals and sees no data-control protocol."""
    with weston(tmp_path / "xdg") as env:
        _, checks = doctor(agent_config(tmp_path), tmp_path, env)
        assert status(checks, "display") == "ok", checks["display"]
        assert "wl_compositor" in checks["display"][0]["facts"]["globals"]
        assert status(checks, "watch clipboard") == "fail"
        assert "data-control" in checks["watch clipboard"][0]["detail"]
        assert status(checks, "watch idle") == "warn"


def test_wayland_compositor_with_data_control(tmp_path: Path) -> None:
    """sway (wlroots, headless) offers wlr data-control: with wl-paste the clipboard can be watched."""
    if shutil.which("wl-paste") is None:
        pytest.skip("wl-paste is not installed (apt: wl-clipboard)")
    with sway() as env:
        _, checks = doctor(agent_config(tmp_path), tmp_path, env)
    assert status(checks, "display") == "ok", checks["display"]
    assert "zwlr_data_control_manager_v1" in checks["display"][0]["facts"]["globals"]
    assert status(checks, "watch clipboard") == "ok", checks["watch clipboard"]
    assert "zwlr_data_control_manager_v1" in checks["watch clipboard"][0]["detail"]
