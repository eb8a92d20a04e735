"""Contract: the clipboard, capture and watcher events the real agent and session watcher produce under
Xvfb, run through the collector's shipped alert rules and templates — every field a matching rule names
(title placeholders, grouping) resolves from what the agent really sent."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.contract.alerts_check import check
from tests.session.conftest import png_bytes, xclip_copy
from tests.session.harness import Agent, WatcherProc

CARD = "4111 1111 1111 1111"


def test_real_session_events_fill_every_field_of_the_shipped_rules(xdisplay: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shots = home / "Pictures"
    shots.mkdir(parents=True)
    agent = Agent(
        tmp_path,
        {
            "agent": {"host_name": "booth-7"},
            "clipboard": {"policy": "clear"},
            "screenshot": {"policy": "quarantine", "dirs": [str(shots)]},
            # No logind here: a lock attempt would only fail (tests/lock has the lock scenario).
            "lock": {"lock_on_watcher_missing": False},
        },
    ).start()
    watcher = WatcherProc(agent, xdisplay, "c7", home).start()
    try:
        watcher.wait_registered()
        # clipboard.copy with personal data, then clipboard.cleared by the policy.
        proc = xclip_copy(xdisplay, f"card {CARD}".encode())
        try:
            agent.wait_event("clipboard.cleared")
        finally:
            proc.kill()
            proc.wait()
        # screenshot.detected (a file in the screenshot dir) and screenshot.blocked (quarantined).
        (shots / "capture.png").write_bytes(png_bytes(tmp_path))
        agent.wait_event("screenshot.blocked", lambda e: e["data"]["action"] == "quarantine")
        # screenshot.detected (a recorder process) and screenshot.blocked (killed).
        recorder = tmp_path / "obs"
        recorder.symlink_to("/bin/sleep")
        rec = subprocess.Popen([str(recorder), "30"])
        try:
            agent.wait_event("screenshot.blocked", lambda e: e["data"]["action"] == "kill")
        finally:
            rec.kill()
            rec.wait()
        # session.watcher_missing: the watcher is killed.
        watcher.stop(signal.SIGKILL)
        agent.wait_event("session.watcher_missing")
    finally:
        watcher.stop()
        agent.stop()

    events = agent.events()
    report = check(events)
    assert report.unresolved == []
    assert report.unresolved_other == []
    assert {"clipboard-personal-data", "clipboard-cleared", "screen-capture", "watcher-missing"} <= (
        report.matched()
    )
    assert report.titles["clipboard-personal-data"] == [
        "Personal data copied on booth-7 by root (credit_card:1)"
    ]
    assert "Session watcher missing on booth-7 for root" in report.titles["watcher-missing"]
    assert not [t for titles in report.titles.values() for t in titles if "-" in t.split()]
