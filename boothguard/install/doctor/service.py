"""Config, the agent process, installed units, the collector and the spool."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from boothguard.install import layout
from boothguard.install.doctor.model import Check, Probe, Status


def config_check(probe: Probe) -> Iterator[Check]:
    where = str(probe.config_path or "/etc/boothguard/agent.toml")
    if probe.config_problems:
        yield Check(
            "config",
            "fail",
            f"{len(probe.config_problems)} problem(s): " + "; ".join(probe.config_problems[:5]),
            f"fix {where} (`boothguard config check` lists every problem); the agent refuses to start",
            {"problems": probe.config_problems},
        )
        return
    mode = probe.config.usb.mode
    exists = probe.config_path is not None or Path(where).exists()
    detail = f"{where} valid" if exists else "no config file: built-in defaults apply"
    status: Status = "ok"
    fix = ""
    if mode != "enforce":
        status = "warn"
        fix = 'set usb.mode = "enforce" once the audit period is over'
    yield Check("config", status, f"{detail}; usb.mode = {mode}", fix, {"usb_mode": mode})
    if probe.config_refused:
        yield Check(
            "local overrides",
            "warn",
            f"{len(probe.config_refused)} local value(s) ignored: " + "; ".join(probe.config_refused[:5]),
            "the collector's policy sets these keys; ask security to list them in the policy's"
            " local_override, or remove them from the local drop-in",
            {"refused": probe.config_refused},
        )


def agent_check(probe: Probe) -> Iterator[Check]:
    from boothguard.agent.client import request
    from boothguard.errors import BoothguardError

    sock = probe.config.socket_path
    try:
        reply = request(sock, "status", timeout=probe.timeout)
    except BoothguardError as exc:
        yield Check(
            "agent",
            "fail",
            f"not running or not reachable: {exc}",
            "systemctl enable --now boothguard.service; journalctl -u boothguard for why it stopped",
        )
        return
    agent = reply.get("agent", {})
    version = agent.get("version") if isinstance(agent, dict) else None
    yield Check("agent", "ok", f"running, socket {sock}" + (f", version {version}" if version else ""))


def units_check(probe: Probe) -> Iterator[Check]:
    wanted = {
        "agent unit": f"{layout.SYSTEM_UNIT_DIR}/{layout.AGENT_UNIT}",
        "session unit": f"{layout.USER_UNIT_DIR}/{layout.SESSION_UNIT}",
        "udev rule": layout.UDEV_RULE,
        "autostart entry": layout.AUTOSTART,
    }
    missing = [name for name, path in wanted.items() if not _installed(probe, path)]
    systemd = probe.path("/run/systemd/system").is_dir()
    facts = {"systemd_running": systemd, "missing": missing}
    if missing:
        yield Check(
            "install",
            "warn",
            "not installed: " + ", ".join(missing),
            "install the boothguard .deb, or run `boothguard install`",
            facts,
        )
    elif not systemd:
        yield Check("install", "warn", "installed, but systemd is not running here (container?)", "", facts)
    else:
        yield Check("install", "ok", "units, udev rule and autostart entry installed", "", facts)


def _installed(probe: Probe, path: str) -> bool:
    candidates = [path, path.replace("/lib/", "/usr/lib/", 1), path.replace("/lib/", "/etc/", 1)]
    return any(probe.path(c).exists() for c in candidates)


def collector_checks(probe: Probe) -> Iterator[Check]:
    ship = probe.config.ship
    token = probe.config.token_file
    if not ship.collector_url:
        yield Check(
            "collector",
            "warn",
            "ship.collector_url is empty: events stay in the local spool",
            "set ship.collector_url, then `boothguard enroll --collector URL --secret-file FILE`",
        )
        return
    yield _healthz(probe, ship.collector_url.rstrip("/") + "/healthz")
    try:
        present = token.stat().st_size > 0
    except PermissionError:
        yield Check("token", "warn", f"{token} not readable by this user", "run doctor as root")
        return
    except OSError:
        present = False
    if present:
        yield Check("token", "ok", f"host token present ({token})")
    else:
        yield Check(
            "token",
            "fail",
            f"no host token at {token}: the collector will refuse this host's events",
            "boothguard enroll --collector URL --secret-file FILE",
        )


def _healthz(probe: Probe, url: str) -> Check:
    import httpx

    ca = probe.config.ship.ca_file
    verify: str | bool = str(ca) if ca else True
    try:
        reply = httpx.get(url, timeout=probe.timeout, verify=verify)
    except httpx.HTTPError as exc:
        return Check(
            "collector",
            "fail",
            f"{url} unreachable: {type(exc).__name__}: {exc}",
            "check ship.collector_url, DNS, the firewall and ship.ca_file; events wait in the spool",
        )
    if reply.status_code != 200:
        return Check("collector", "fail", f"{url} answered {reply.status_code}", "check the collector's log")
    return Check("collector", "ok", f"{url} answered 200", "", {"url": url})


def spool_check(probe: Probe) -> Iterator[Check]:
    path = probe.config.agent.state_dir / "spool.db"
    limit = probe.config.agent.spool_max_mib * 1024 * 1024
    if (
        not os.access(probe.config.agent.state_dir, os.R_OK | os.X_OK)
        and probe.config.agent.state_dir.exists()
    ):
        yield Check("spool", "warn", f"{path} not readable by this user", "run doctor as root")
        return
    if not path.exists():
        yield Check("spool", "warn", f"no spool yet at {path}", "starts with the agent's first run")
        return
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=probe.timeout)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            depth, _oldest = db.execute("SELECT count(*), min(created) FROM events").fetchone()
            dead = db.execute("SELECT count(*) FROM dead_letter").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        yield Check(
            "spool", "fail", f"{path} unreadable: {exc}", "stop the agent; it recovers a corrupt spool"
        )
        return
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
    facts = {"depth": depth, "bytes": size, "dead_letters": dead, "limit_bytes": limit}
    if verdict != "ok":
        yield Check("spool", "fail", f"integrity check: {verdict}", "restart the agent (it recovers)", facts)
    elif size > 0.8 * limit:
        yield Check(
            "spool",
            "warn",
            f"{depth} unsent events, {size} bytes: over 80% of agent.spool_max_mib",
            "check collector reachability; raise agent.spool_max_mib if the outage is expected",
            facts,
        )
    else:
        detail = f"{depth} unsent events, {size} bytes, {dead} dead letters"
        yield Check(
            "spool", "warn" if dead else "ok", detail, "see the dead letters in status" if dead else "", facts
        )
