"""`boothguard quickstart`: the main job on one machine — a collector on its embedded SQLite default and
an agent shipping to it, supervised together until Ctrl-C.

USB runs in `audit` mode unless `--enforce` is given: trying boothguard must never lock a developer out of
their own keyboard. Those settings and the collector's address go into a drop-in (`10-quickstart.toml` in
the agent config's `.d` directory), so `doctor`, `usb list` and `config check` read what the running agent
runs with; later drop-ins (the collector's policy, 50-) and the environment still override it. Everything
else uses the normal config files (/etc/boothguard/*.toml) and defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from boothguard.errors import EXIT_FAILURE

BOOTHGUARD = [sys.executable, "-m", "boothguard"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "quickstart", help="run a collector (SQLite) and an agent shipping to it, on this machine"
    )
    p.add_argument("--enforce", action="store_true", help="USB enforce mode (default here: audit)")
    p.add_argument(
        "--config", type=Path, default=None, help="agent config (default /etc/boothguard/agent.toml)"
    )
    p.add_argument("--collector-config", type=Path, default=None, help="collector config")
    p.set_defaults(func=_quickstart)


def _with_config(argv: list[str], path: Path | None) -> list[str]:
    return [*argv, "--config", str(path)] if path else argv


def write_dropin(agent_config: Path, url: str, *, enforce: bool) -> Path:
    """The quickstart's settings as a drop-in of `agent_config` (replaced atomically on each run)."""
    dropins = agent_config.with_suffix(".d")
    dropins.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = dropins / "10-quickstart.toml"
    lines = [
        "# Written by `boothguard quickstart`; delete to undo. Later drop-ins and BOOTHGUARD_* override it.",
        "[ship]",
        f"collector_url = {json.dumps(url)}",
    ]
    if not enforce:
        lines += ["", "[usb]", 'mode = "audit"  # quickstart without --enforce: nobody is locked out']
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return path


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def _quickstart(args: argparse.Namespace) -> int:
    from boothguard import config

    ccfg = config.load_collector(args.collector_config)
    secret = ccfg.collector.enroll_secret_file
    if not secret.exists():
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text(secrets.token_urlsafe(32) + "\n")
        secret.chmod(0o600)
        print(f"quickstart: created the enrollment secret {secret}")
    url = "http://" + ccfg.collector.listen
    collector = subprocess.Popen(_with_config([*BOOTHGUARD, "collector"], args.collector_config))
    procs = [collector]
    try:
        if not _wait_healthy(url, collector):
            print(f"quickstart: the collector did not come up at {url}", file=sys.stderr)
            return EXIT_FAILURE
        user = subprocess.run(
            _with_config(
                [*BOOTHGUARD, "collector", "user", "add", "admin", "--role", "admin"], args.collector_config
            ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if user.returncode == 0:
            print(f"quickstart: dashboard user 'admin' created — {user.stdout.strip()}")
        enroll = subprocess.run(
            _with_config(
                [*BOOTHGUARD, "enroll", "--collector", url, "--secret-file", str(secret)], args.config
            ),
            check=False,
        )
        if enroll.returncode != 0:
            return enroll.returncode
        dropin = write_dropin(args.config or config.ETC / "agent.toml", url, enforce=args.enforce)
        print(f"quickstart: agent settings written to {dropin}")
        agent = subprocess.Popen(_with_config([*BOOTHGUARD, "agent"], args.config))
        procs.append(agent)
        print(
            f"quickstart: collector {url} (dashboard {url}/), agent shipping to it; "
            f"`boothguard status` shows the agent. Ctrl-C stops both."
        )
        return _supervise(procs)
    finally:
        # The agent first, so its agent.stopping still reaches the collector.
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _supervise(procs: list[subprocess.Popen[bytes]]) -> int:
    names = {id(procs[0]): "collector", id(procs[-1]): "agent"}
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop:
        for proc in procs:
            if proc.poll() is not None:
                print(f"quickstart: the {names[id(proc)]} exited with {proc.returncode}", file=sys.stderr)
                return proc.returncode or EXIT_FAILURE
        time.sleep(0.5)
    return 0
