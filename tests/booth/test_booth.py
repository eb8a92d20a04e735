"""One real booth: Debian 12 (debootstrap) booted under QEMU/TCG with systemd, the project's .deb installed
with `apt install` inside it and run by its own maintainer scripts under the shipped unit, the booth's own
udev and logind; USB hot-plugged over QMP. Every scenario runs in ONE boot, in file order.

The booth is enrolled to a real collector on the host (tests/booth/collector.py, reached over QEMU's user-mode
network): every scenario asserts on what the collector stored, read through its API as an admin would
(GET /v1/events, and GET /v1/alerts where a shipped alert rule covers the event), each stored event checked
against the same line in the agent's spool; plus the guest's own state and an independent raw-netlink oracle
that records every kernel uevent of the boot.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boothguard.collector.alerts.defaults import DEFAULT_RULES
from boothguard.install import deb
from tests.booth import image as bimage
from tests.booth.collector import BoothCollector
from tests.booth.enroll import enroll
from tests.booth.vm import Booth, ok, sh, wait_active, why_not

pytestmark = [pytest.mark.booth, pytest.mark.slow]
HERE = Path(__file__).resolve().parent
V1, V2 = "0.1.0~booth1", "0.1.0~booth2"
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if why := why_not():
        pytest.skip(why)
    work = tmp_path_factory.mktemp("booth")
    work.chmod(0o755)
    return work


@pytest.fixture(scope="module")
def collector(work: Path) -> Iterator[BoothCollector]:
    coll = BoothCollector(work).start()
    try:
        yield coll
    finally:
        coll.stop()


@pytest.fixture(scope="module")
def booth(work: Path, collector: BoothCollector) -> Iterator[Booth]:
    t0 = time.monotonic()
    FIGURES["module_started"] = t0
    img = bimage.build()
    FIGURES["image_build_s"] = round(img.build_seconds, 1)
    wheel = deb.build_wheel(deb.REPO, work / "wheel")
    staged = deb.stage(work / "stage", wheel)
    for version in (V1, V2):
        built = deb.pack(staged, version, work / "out", "gzip")
        shutil.copy(built, work / f"boothguard_{version.replace('~', '_')}.deb")
    shutil.rmtree(work / "stage")
    shutil.copy(HERE / "driver.py", work / "driver.py")
    shutil.copy(HERE / "booth_login.py", work / "booth_login.py")
    shutil.copy(HERE.parent / "qemu" / "guest.py", work / "qguest.py")
    FIGURES["prepare_s"] = round(time.monotonic() - t0, 1)
    vm = Booth(img, work, net=True)
    try:
        ready = json.loads(vm.expect("READY", 300))
        FIGURES["boot_to_ready_s"] = round(time.monotonic() - vm.started, 1)
        FIGURES["guest_uptime_at_ready_s"] = ready["uptime"]
        yield vm
        vm.ctl.sendall(b"DONE\n")
        vm.expect("BYE", 60)
        vm.execute("quit")
    finally:
        vm.close()
        FIGURES["module_wall_s"] = round(time.monotonic() - FIGURES.pop("module_started"), 1)
        print("booth figures:", json.dumps(FIGURES))


def events(vm: Booth) -> list[dict[str, Any]]:
    return list(vm.request("EVENTS")["events"])


def until(vm: Booth, condition: str, timeout: float = 90) -> str:
    """Polls a shell condition in the booth (5 times a second) until it holds; fails after timeout."""
    n = int(timeout * 5)
    return ok(vm, f"for i in $(seq {n}); do {condition} && exit 0; sleep 0.2; done; exit 1", timeout + 30)


def last_seq(vm: Booth) -> int:
    """The agent's last committed seq (its spool drops what the collector acknowledged, so not from there)."""
    return int(json.loads(ok(vm, f"{BG} status --json", 60))["spool"]["last_seq"])


def wait_event(
    vm: Booth, coll: BoothCollector, etype: str, since: int, pred: Any = None, timeout: float = 90
) -> dict[str, Any]:
    """The first event of etype after seq `since` (and matching pred on its data) as the collector stored it
    (GET /v1/events). If the spool still holds that seq (it drops what the collector acknowledged), it is
    the very line the agent committed there."""
    deadline = time.monotonic() + timeout
    while True:
        for e in coll.events(etype):
            if e["seq"] > since and (pred is None or pred(e["data"])):
                spooled = [
                    {k: v for k, v in s.items() if k != "_seq"} for s in events(vm) if s["_seq"] == e["seq"]
                ]
                assert spooled in ([], [e]), f"collector: {e}\nspool: {spooled}"
                return e
        if time.monotonic() > deadline:
            evs = events(vm)
            spool = [(e["_seq"], e["type"]) for e in evs if e["_seq"] > since]
            stored = [(e["seq"], e["type"]) for e in coll.events() if e["seq"] > since]
            raise AssertionError(
                f"no {etype} after seq {since} at the collector: {stored}\nin the spool: {spool}\n"
                f"{diagnosis(vm, evs[-4:])}"
            )
        time.sleep(0.5)


def alert_of(coll: BoothCollector, rule: str, event: dict[str, Any]) -> dict[str, Any]:
    """The one open alert of shipped rule `rule` on this booth: raised by the stored events of its types
    (its count is theirs, all in one group) and, `event` being the latest of them, holding its data."""
    alerts = [a for a in coll.alerts() if a["rule"] == rule]
    assert len(alerts) == 1, alerts
    a = alerts[0]
    types = next(r.types for r in DEFAULT_RULES if r.id == rule)
    raised = [e for t in types for e in coll.events(t)]
    assert (a["state"], [a["host_id"]], a["count"]) == ("open", coll.host_ids(), len(raised)), (a, raised)
    assert a["data"] == event["data"], a
    return a


def diagnosis(vm: Booth, recent: list[dict[str, Any]]) -> str:
    """What a failed wait is explained by: the last events in full, the session's and the agent's logs."""
    logs = sh(
        vm,
        "ps -eo pid,user,args | grep -E '[X]vfb|[x]ss-lock|[i]3lock|[b]oothguard'; "
        "tail -n 15 /run/boothdm/*.log /home/agent1/*.log; journalctl -b -u boothguard -o cat | tail -n 30",
    )
    return json.dumps(recent, indent=1) + "\n" + str(logs["out"])


def reload_agent(vm: Booth) -> None:
    """`systemctl reload` returns when SIGHUP is sent; the agent logs config_reloaded once it applied it."""
    count = "journalctl -b -u boothguard -o cat | grep -c config_reloaded"
    before = int(sh(vm, count)["out"].strip() or 0)
    ok(vm, "systemctl reload boothguard")
    until(vm, f'[ "$({count})" -gt {before} ]', 60)


def test_apt_install_enables_and_starts_the_agent_under_the_shipped_unit(
    booth: Booth, collector: BoothCollector
) -> None:
    t0 = time.monotonic()
    ok(booth, f"apt-get install -y -q --no-install-recommends ./boothguard_{V1.replace('~', '_')}.deb", 600)
    FIGURES["apt_install_s"] = round(time.monotonic() - t0, 1)
    wait_active(booth)
    assert ok(booth, "systemctl is-enabled boothguard").strip() == "enabled"
    unit = ok(booth, "systemctl show -p FragmentPath -p ProtectSystem -p NoNewPrivileges boothguard")
    assert "FragmentPath=/lib/systemd/system/boothguard.service" in unit or "/usr/lib/systemd" in unit, unit
    assert "ProtectSystem=strict" in unit, unit
    assert "NoNewPrivileges=yes" in unit, unit
    # The shipped udev rule and the agent have locked every bus.
    ok(booth, "for b in /sys/bus/usb/devices/usb*; do [ $(cat $b/authorized_default) = 0 ] || exit 1; done")
    # Enrolled: from here on every event the agent commits is shipped to the host's collector.
    FIGURES["enroll_s"] = round(enroll(booth, collector), 1)
    assert len(collector.host_ids()) == 1
    started = wait_event(booth, collector, "agent.started", 0, lambda d: d["collector_url"] is not None)[
        "data"
    ]
    assert (started["usb_mode"], started["collector_url"]) == ("enforce", collector.guest_url), started
    # What the agent had before it was enrolled (the apt-started run) was shipped too, from seq 1 on.
    seqs = [e["seq"] for e in collector.events()]
    assert seqs == list(range(1, len(seqs) + 1)), seqs


def usb_event(vm: Booth, coll: BoothCollector, etype: str, since: int, port: str) -> dict[str, Any]:
    return wait_event(vm, coll, etype, since, lambda d: d.get("port") == port)


def test_usb_hotplug_under_the_shipped_unit(booth: Booth, collector: BoothCollector) -> None:
    results = {}
    since = last_seq(booth)
    for kind, dev_id in (("kbd", "kbd1"), ("audio", "audio1"), ("stick", "stick1"), ("phone", "phone1")):
        booth.plug(kind, dev_id)
        results[dev_id] = booth.request(f"CHECK {kind}", 120)
    journal = sh(booth, "journalctl -b -u boothguard -u systemd-udevd --no-pager | tail -80")["out"]
    report = json.dumps(results, indent=1) + "\n" + journal
    for r in results.values():
        assert "error" not in r, report
    kbd = results["kbd1"]
    assert kbd["authorized"] == "1", report
    assert "usbhid" in [i["driver"] for i in kbd["interfaces"].values()], report
    assert results["audio1"]["authorized"] == "1", report
    stick = results["stick1"]
    assert stick["authorized"] == "0", report
    assert stick["block_adds"] == [], report
    assert stick["dev_sd"] == [], report
    # The phone (MTP, 06/01/01): never authorized, so no driver on any interface.
    phone = results["phone1"]
    assert phone["authorized"] == "0", report
    assert all(i["driver"] is None for i in phone["interfaces"].values()), report
    assert phone["block_adds"] == [], report
    assert booth.request("ORACLE")["block_adds"] == [], report

    # At the collector: each decision with the device and the rule that made it.
    kbd_ev = usb_event(booth, collector, "usb.device.allowed", since, kbd["port"])["data"]
    assert (kbd_ev["vendor_id"], kbd_ev["product_id"]) == ("0627", "0001"), kbd_ev
    audio_ev = usb_event(booth, collector, "usb.device.allowed", since, results["audio1"]["port"])["data"]
    assert (audio_ev["vendor_id"], audio_ev["product_id"]) == ("46f4", "0002"), audio_ev
    stick_ev = usb_event(booth, collector, "usb.device.blocked", since, stick["port"])
    d = stick_ev["data"]
    assert (d["vendor_id"], d["product_id"], d["rule"]) == ("46f4", "0001", "block-mass-storage"), d
    assert (stick_ev["severity"], d["outcome"], d["enforced"]) == ("medium", "blocked", True), stick_ev
    assert d["interface_classes"] == ["mass_storage"], d
    phone_ev = usb_event(booth, collector, "usb.device.blocked", since, phone["port"])
    d = phone_ev["data"]
    assert (d["vendor_id"], d["product_id"], d["rule"]) == ("46f4", "0004", "block-mtp"), d
    assert (phone_ev["severity"], d["outcome"], d["enforced"]) == ("medium", "blocked", True), phone_ev
    # The kernel's view of it (06/01/01, still image); the narrower block-mtp is the rule that decided.
    assert [(i["codes"], i["action"]) for i in d["interfaces"]] == [(["06/01/01"], "block")], d
    # The shipped usb-blocked rule raised one alert for this booth (first: the stick), holding the phone's.
    alert = alert_of(collector, "usb-blocked", phone_ev)
    assert (alert["severity"], alert["event_type"]) == ("high", "usb.device.blocked"), alert
    assert "46f4:0001" in alert["title"], alert
    FIGURES["usb_event_data_keys"] = sorted(d)


def test_reload_with_a_bad_dropin_is_refused_and_the_old_config_kept(
    booth: Booth, collector: BoothCollector
) -> None:
    pid = ok(booth, "systemctl show -p MainPID --value boothguard").strip()
    since = last_seq(booth)  # before the bad file: `boothguard status` reads the config too, and refuses it
    ok(booth, "printf '[usb]\\nmode = \"sideways\"\\n' > /etc/boothguard/agent.d/90-bad.toml")
    ok(booth, "systemctl reload boothguard")
    rejected = wait_event(booth, collector, "agent.config_rejected", since, timeout=60)
    assert rejected["severity"] == "high", rejected
    assert any("90-bad.toml" in p and "usb.mode" in p for p in rejected["data"]["problems"]), rejected
    alert_of(collector, "config-rejected", rejected)
    assert ok(booth, "systemctl show -p MainPID --value boothguard").strip() == pid
    wait_active(booth)
    ok(booth, "rm /etc/boothguard/agent.d/90-bad.toml")
    # Still enforcing with the old config: a second stick stays blocked.
    since = last_seq(booth)
    booth.plug("stick", "stick2")
    r = booth.request("CHECK stick", 120)
    assert r.get("authorized") == "0", r
    assert r.get("dev_sd") == [], r
    blocked = usb_event(booth, collector, "usb.device.blocked", since, r["port"])
    assert blocked["data"]["rule"] == "block-mass-storage", blocked
    alert_of(collector, "usb-blocked", blocked)


# -- the operator's session: a PAM login (pam_systemd → logind), rootful Xvfb, xss-lock + i3lock, the watcher

RUN_AS_OPERATOR = "python3 /mnt/work/booth_login.py run"
SESSION: dict[str, Any] = {}
BG = "/opt/boothguard/bin/boothguard"
MOVE_POINTER = (
    "from Xlib import X, display; from Xlib.ext import xtest; d = display.Display(); "
    "xtest.fake_input(d, X.MotionNotify, x=200, y=200); d.sync()"
)


def as_operator(vm: Booth, cmd: str, timeout: float = 120) -> dict[str, Any]:
    """A shell line run by agent1 inside their session (its environment, moved into its scope first)."""
    return sh(vm, f"{RUN_AS_OPERATOR} sh -c {shlex.quote(cmd)}", timeout)


def session_prop(vm: Booth, prop: str) -> str:
    return ok(vm, f"loginctl show-session {SESSION['id']} -p {prop} --value").strip()


def i3lock_pids(vm: Booth) -> list[int]:
    return [int(p) for p in sh(vm, "pgrep -u agent1 -x i3lock")["out"].split()]


def start_xss_lock(vm: Booth, log: str) -> None:
    ok(vm, f"{RUN_AS_OPERATOR} --bg {log} xss-lock -- i3lock -n")
    wait_xss_lock(vm, log)


def wait_xss_lock(vm: Booth, log: str) -> None:
    # Ready once it asked logind for its sleep inhibitor, which it does after subscribing to the session's
    # Lock signal; without polkit in the booth logind refuses that inhibitor to a user, and xss-lock says so.
    until(vm, f"pgrep -u agent1 -x xss-lock >/dev/null && grep -q inhibitor {log}", 90)


def mine(sid: str, source: str | None = None) -> Any:
    return lambda d: (
        d.get("session", d.get("session_id")) == sid and (source is None or d["source"] == source)
    )


def test_operator_logs_in_to_a_real_x11_session_with_the_shipped_watcher(
    booth: Booth, collector: BoothCollector
) -> None:
    t0 = time.monotonic()
    # A proof may take 15 s, not 3: under TCG on a loaded machine i3lock needed 3.0 s to grab (a PC: 40 ms).
    ok(booth, "printf '[lock]\\nverify_seconds = 15\\n' > /etc/boothguard/agent.d/59-booth-tcg.toml")
    # Idle locking off until its own scenario (Xvfb gets no input, so the default 300 s would lock in the
    # middle of the others); screenshots quarantined from now on, applied by reload, which opens the door.
    ok(booth, "printf '[lock]\\nidle_seconds = 0\\n' > /etc/boothguard/agent.d/60-booth-idle.toml")
    ok(
        booth,
        "printf '[screenshot]\\npolicy = \"quarantine\"\\n' > /etc/boothguard/agent.d/61-booth-shots.toml",
    )
    reload_agent(booth)
    until(booth, "[ -S /run/boothguard/quarantine.sock ]", 30)
    since = last_seq(booth)
    ok(booth, "systemd-run --unit=booth-login --collect python3 /mnt/work/booth_login.py login agent1")
    until(booth, "[ -s /run/boothdm/session.json ]", 180)
    state = json.loads(ok(booth, "cat /run/boothdm/session.json"))
    sid = SESSION["id"] = state["env"]["XDG_SESSION_ID"]
    props = dict(x.split("=", 1) for x in ok(booth, f"loginctl show-session {sid}").splitlines() if "=" in x)
    want = {"Name": "agent1", "Type": "x11", "Class": "user", "Display": ":0", "Service": "login"}
    assert {k: props.get(k) for k in want} == want, props
    assert (props["Active"], props["Remote"], props["LockedHint"]) == ("yes", "no", "no"), props
    assert props["Leader"] == str(state["leader"]), props
    started = wait_event(booth, collector, "session.started", since, mine(sid), 180)["data"]
    assert {"clipboard.x11", "capture.record", "idle.x11", "capture.files"} <= set(started["capabilities"])
    assert started["missing_capabilities"] == {}, started
    pid = SESSION["watcher_pid"] = started["watcher_pid"]
    # The watcher is the .deb's autostart entry, run as agent1 in the session's scope; X runs as root.
    proc = ok(booth, f"ps -o user=,args= -p {pid}; cat /proc/{pid}/cgroup")
    assert proc.startswith("agent1 "), proc
    assert f"{BG} session" in proc, proc
    assert f"/session-{sid}.scope" in proc, proc
    ok(booth, f"grep -qx 'Exec={BG} session' /etc/xdg/autostart/boothguard-session.desktop")
    assert ok(booth, "ps -o user= -C Xvfb").split() == ["root"]
    wait_xss_lock(booth, "/home/agent1/xss-lock.log")
    FIGURES["session_login_s"] = round(time.monotonic() - t0, 1)


def test_away_locks_through_logind_and_i3lock_and_escalates_without_a_locker(
    booth: Booth, collector: BoothCollector
) -> None:
    t0, sid = time.monotonic(), SESSION["id"]
    since = last_seq(booth)
    r = as_operator(booth, f"{BG} away --reason booth-break")
    assert r["rc"] == 0, r
    locked = wait_event(booth, collector, "screen.locked", since, mine(sid, "cli"))["data"]
    assert (locked["method"], locked["result"], locked["verified_by"]) == (
        "logind",
        "verified",
        "x11_grab",
    ), locked
    assert locked["evidence"]["locked_hint"] is True, locked  # xss-lock set it when it started i3lock
    x11 = locked["evidence"]["x11"]
    assert (x11["grabbed"], x11["keyboard"], x11["pointer"]) == (
        True,
        "already_grabbed",
        "already_grabbed",
    ), x11
    assert session_prop(booth, "LockedHint") == "yes"
    assert i3lock_pids(booth)
    FIGURES["away_request_to_verified_ms"] = locked["timings"]["request_to_verified_ms"]

    # logind's unlock: xss-lock stops i3lock and clears the hint; the away state ends
    since = last_seq(booth)
    ok(booth, f"loginctl unlock-session {sid}")
    assert (
        wait_event(booth, collector, "screen.unlocked", since, mine(sid))["data"]["watcher_missing"] is False
    )
    assert wait_event(booth, collector, "away.ended", since, mine(sid, "unlock"))
    until(booth, "! pgrep -u agent1 -x i3lock >/dev/null", 30)
    assert session_prop(booth, "LockedHint") == "no"

    # No locker any more (the operator killed xss-lock): away cannot be proven → exit 1, screen.lock_failed
    assert as_operator(booth, "pkill -x xss-lock")["rc"] == 0
    until(booth, "! pgrep -u agent1 -x xss-lock >/dev/null", 30)
    since = last_seq(booth)
    r = as_operator(booth, f"{BG} away --reason booth-break-2")
    assert r["rc"] == 1, r
    assert "lock not verified" in r["out"], r
    failed = wait_event(booth, collector, "screen.lock_failed", since, mine(sid, "cli"))
    assert failed["severity"] == "high", failed
    assert alert_of(collector, "lock-failed", failed)["severity"] == "critical"
    d = failed["data"]
    assert (d["result"], d["verified_by"], d["evidence"]["locked_hint"]) == ("unverified", None, False), d
    assert d["evidence"]["x11"]["grabbed"] is False, d
    assert (d["fallback"]["ran"], d["fallback"]["ok"]) == (True, False), d  # none of the shipped ones here
    assert not i3lock_pids(booth)
    assert session_prop(booth, "LockedHint") == "no"
    since = last_seq(booth)
    assert as_operator(booth, f"{BG} back")["rc"] == 0
    assert wait_event(booth, collector, "away.ended", since, mine(sid, "cli"))
    start_xss_lock(booth, "/run/boothdm/xss-lock-2.log")
    FIGURES["scenario_away_s"] = round(time.monotonic() - t0, 1)


def test_operator_kills_the_watcher_the_session_locks_and_stays_locked(
    booth: Booth, collector: BoothCollector
) -> None:
    t0, sid, pid = time.monotonic(), SESSION["id"], SESSION["watcher_pid"]
    since = last_seq(booth)
    assert as_operator(booth, f"kill -KILL {pid}")["rc"] == 0
    missing = wait_event(booth, collector, "session.watcher_missing", since, mine(sid))
    assert (missing["severity"], missing["data"]["watcher_pid"]) == ("high", pid), missing
    assert alert_of(collector, "watcher-missing", missing)["user"] == "agent1"
    locked = wait_event(booth, collector, "screen.locked", since, mine(sid, "watcher_missing"))["data"]
    assert (locked["result"], locked["verified_by"]) == ("verified", "x11_grab"), locked
    assert session_prop(booth, "LockedHint") == "yes"
    assert i3lock_pids(booth)
    FIGURES["watcher_missing_request_to_verified_ms"] = locked["timings"]["request_to_verified_ms"]

    # While the watcher is missing, an unlock is recorded and answered with a new lock.
    since = last_seq(booth)
    ok(booth, f"loginctl unlock-session {sid}")
    unlocked = wait_event(booth, collector, "screen.unlocked", since, mine(sid))
    assert (unlocked["severity"], unlocked["data"]["watcher_missing"]) == ("medium", True), unlocked
    relocked = wait_event(booth, collector, "screen.locked", unlocked["seq"], mine(sid, "watcher_missing"))[
        "data"
    ]
    assert relocked["verified_by"] == "x11_grab", relocked
    until(booth, "pgrep -u agent1 -x i3lock >/dev/null", 30)

    # The watcher comes back (the autostart entry's command): now an unlock ends the away state.
    since = last_seq(booth)
    exec_line = "$(sed -n 's/^Exec=//p' /etc/xdg/autostart/boothguard-session.desktop)"
    ok(booth, f"{RUN_AS_OPERATOR} --bg /run/boothdm/watcher-2.log {exec_line}")
    back = wait_event(
        booth, collector, "session.started", since, lambda d: mine(sid)(d) and d["watcher_back"], 180
    )
    SESSION["watcher_pid"] = back["data"]["watcher_pid"]
    since = last_seq(booth)
    ok(booth, f"loginctl unlock-session {sid}")
    assert (
        wait_event(booth, collector, "screen.unlocked", since, mine(sid))["data"]["watcher_missing"] is False
    )
    assert wait_event(booth, collector, "away.ended", since, mine(sid, "unlock"))
    until(booth, "! pgrep -u agent1 -x i3lock >/dev/null", 30)
    FIGURES["scenario_watcher_killed_s"] = round(time.monotonic() - t0, 1)


def test_idle_lock_after_a_short_idle_timeout_set_by_dropin_and_reload(
    booth: Booth, collector: BoothCollector
) -> None:
    t0, sid = time.monotonic(), SESSION["id"]
    since = last_seq(booth)
    # The operator moves the pointer (XTEST): the X server's idle time starts again from zero.
    r = as_operator(booth, f"/opt/boothguard/bin/python -c {shlex.quote(MOVE_POINTER)}")
    assert r["rc"] == 0, r
    ok(booth, "printf '[lock]\\nidle_seconds = 5\\n' > /etc/boothguard/agent.d/60-booth-idle.toml")
    reload_agent(booth)
    away = wait_event(booth, collector, "away.started", since, mine(sid, "idle"), 120)["data"]
    locked = wait_event(booth, collector, "screen.locked", since, mine(sid, "idle"))["data"]
    assert (locked["result"], locked["verified_by"]) == ("verified", "x11_grab"), locked
    match = re.fullmatch(r"idle for (\d+) s", away["reason"])
    assert match, away
    # Idle counted from the pointer move (not the minutes since the X server started), and at least 5 s.
    assert 5 <= int(match.group(1)) <= time.monotonic() - t0 + 1, away
    assert session_prop(booth, "LockedHint") == "yes"
    assert i3lock_pids(booth)
    FIGURES["idle_lock_after_s"] = int(match.group(1))
    FIGURES["idle_request_to_verified_ms"] = locked["timings"]["request_to_verified_ms"]
    ok(booth, "printf '[lock]\\nidle_seconds = 0\\n' > /etc/boothguard/agent.d/60-booth-idle.toml")
    reload_agent(booth)
    since = last_seq(booth)
    ok(booth, f"loginctl unlock-session {sid}")
    assert wait_event(booth, collector, "away.ended", since, mine(sid, "unlock"))
    until(booth, "! pgrep -u agent1 -x i3lock >/dev/null", 30)
    FIGURES["scenario_idle_s"] = round(time.monotonic() - t0, 1)


def test_screenshot_file_is_quarantined_under_the_shipped_unit(
    booth: Booth, collector: BoothCollector
) -> None:
    t0, sid = time.monotonic(), SESSION["id"]
    shots = "/home/agent1/Pictures/Screenshots"
    since = last_seq(booth)
    # Written whole, then renamed into place, as most capture tools do (dot-files are not looked at).
    r = as_operator(
        booth,
        f"head -c 65536 /dev/urandom > {shots}/.tmp && sha256sum < {shots}/.tmp"
        f" && mv {shots}/.tmp {shots}/shot.png",
    )
    assert r["rc"] == 0, r
    digest = r["out"].split()[0]
    pick = lambda d: mine(sid)(d) and "shot.png" in (d.get("file"), d.get("what", {}).get("file"))  # noqa: E731
    detected = wait_event(booth, collector, "screenshot.detected", since, pick)["data"]
    assert detected["policy"] == "quarantine", detected
    blocked_ev = wait_event(booth, collector, "screenshot.blocked", since, pick)
    blocked = blocked_ev["data"]
    assert (blocked["action"], blocked["ok"], blocked["error"]) == ("quarantine", True, None), blocked
    # The shipped screen-capture rule: one alert, raised by the detection and bumped by the block.
    assert alert_of(collector, "screen-capture", blocked_ev)["event_type"] == "screenshot.detected"
    until(booth, f"[ ! -e {shots}/shot.png ]", 30)
    kept = shlex.quote(f"/var/lib/boothguard/quarantine/{blocked['quarantined']}")
    out = ok(booth, f"stat -c '%U %a' {kept}; sha256sum < {kept}").split()
    assert out == ["root", "600", digest, "-"], out
    # Back to the shipped policy: the reload closes the door again.
    ok(booth, "rm /etc/boothguard/agent.d/61-booth-shots.toml")
    reload_agent(booth)
    until(booth, "[ ! -e /run/boothguard/quarantine.sock ]", 30)
    FIGURES["scenario_quarantine_s"] = round(time.monotonic() - t0, 1)


def test_apt_upgrade_keeps_config_and_spool(booth: Booth, collector: BoothCollector) -> None:
    ok(booth, "printf '\\n# edited by IT\\n' >> /etc/boothguard/agent.toml")
    conf = ok(booth, "sha256sum /etc/boothguard/agent.toml")
    old_pid = int(ok(booth, "systemctl show -p MainPID --value boothguard"))
    # The collector is down across the upgrade: what the old version commits stays in its spool, unsent.
    collector.pause()
    try:
        for n in range(3):
            ok(booth, f"{BG} emit custom.booth_upgrade --data '{{\"n\": {n}}}'")
        before = events(booth)
        assert [e["data"]["n"] for e in before if e["type"] == "custom.booth_upgrade"] == [0, 1, 2], before
        ok(booth, f"apt-get install -y -q ./boothguard_{V2.replace('~', '_')}.deb", 600)
        assert ok(booth, "dpkg-query -W -f='${Version}' boothguard").strip() == V2
        assert ok(booth, "sha256sum /etc/boothguard/agent.toml") == conf
        wait_active(booth)
        after = events(booth)
    finally:
        collector.resume()
    # Every unsent event of the old version is still there, unchanged, and seq goes on from it.
    assert after[: len(before)] == before
    assert len(after) > len(before)
    seqs = [e["_seq"] for e in after]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    # Still enrolled (the token kept): the new version ships the old one's events, then its own, on the same
    # chain and to the same host; the collector finds no break in it.
    for e in before:
        assert wait_event(booth, collector, e["type"], e["_seq"] - 1, timeout=120)["id"] == e["id"]
    stopping = wait_event(booth, collector, "agent.stopping", before[0]["_seq"] - 1)
    started = wait_event(booth, collector, "agent.started", stopping["seq"])["data"]
    assert (started["pid"] != old_pid, started["collector_url"]) == (True, collector.guest_url), started
    stored = collector.events()
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    assert len(collector.host_ids()) == 1
    assert not [a for a in collector.alerts() if a["rule"].startswith("chain-")]


def test_dpkg_remove_leaves_devices_blocked(booth: Booth, collector: BoothCollector) -> None:
    since = last_seq(booth)
    ok(booth, "dpkg -r boothguard", 300)
    assert sh(booth, "systemctl is-active -q boothguard")["rc"] != 0
    # The agent said it was stopping, and that reached the collector before it went (its last event).
    stopping = wait_event(booth, collector, "agent.stopping", since)
    assert collector.events()[-1]["seq"] == stopping["seq"]
    booth.plug("stick", "stick3")
    r = booth.request("CHECK stick", 120)
    assert r.get("authorized") == "0", r
    assert r.get("dev_sd") == [], r
    assert booth.request("ORACLE")["block_adds"] == []
    # No agent, so no event: the bus stays closed by the kernel's default, not by anything that reports.
    assert collector.events()[-1]["seq"] == stopping["seq"]
