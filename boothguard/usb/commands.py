"""`boothguard usb list [--json]`: what the policy decides for each present device, computed locally from
sysfs and the config (works while the agent is down)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("usb", help="USB control")
    usub = p.add_subparsers(dest="usb_command", metavar="SUBCOMMAND", required=True)
    lp = usub.add_parser("list", help="present USB devices, their verdicts and the rules that matched")
    lp.add_argument("--config", type=Path, default=None, help="main config file")
    lp.add_argument("--json", action="store_true")
    lp.set_defaults(func=_list)
    ap = usub.add_parser("allow", help="let one device through for a while (root; every step is an event)")
    ap.add_argument("device", help="sysfs name like 1-2, or vendor:product[:serial] like 0781:5567")
    ap.add_argument("--for", dest="duration", required=True, help="how long: 90s, 30m, 2h, 1h30m")
    ap.add_argument("--reason", required=True, help="why (recorded in the events)")
    ap.add_argument("--config", type=Path, default=None, help="main config file")
    ap.set_defaults(func=_allow)


def collect(usb: Any) -> list[dict[str, Any]]:
    from boothguard.usb.inventory import read_facts
    from boothguard.usb.policy import decide
    from boothguard.usb.report import device_data
    from boothguard.usb.rules import RuleSet
    from boothguard.usb.sysfs import Sysfs

    sysfs = Sysfs(root=usb.sysfs_root)
    rules = RuleSet.from_settings(usb)
    rows = []
    for name in sysfs.devices():
        facts = read_facts(sysfs, name, with_labels=True)
        decision = decide(facts, rules)
        row = device_data(facts, decision)
        row["authorized"] = sysfs.read_str(name, "authorized") == "1"
        for iface in row["interfaces"]:
            state = sysfs.read_str(name, f"{iface['name']}/authorized")
            iface["authorized"] = None if state is None else state == "1"
        rows.append(row)
    return rows


def _list(args: argparse.Namespace) -> int:
    from boothguard import config

    cfg = config.load_agent(args.config, check_permissions=False)
    rows = collect(cfg.usb)
    if args.json:
        print(json.dumps({"mode": cfg.usb.mode, "devices": rows}, indent=2, sort_keys=True))
        return 0
    print(f"mode: {cfg.usb.mode}")
    if not rows:
        print("no USB devices")
    for row in rows:
        name = " ".join(x for x in (row["manufacturer"], row["product"]) if x) or "-"
        state = "authorized" if row["authorized"] else "unauthorized"
        print(f"{row['port']}  {row['vendor_id']}:{row['product_id']}  {name}")
        print(
            f"  verdict: {row['verdict']}  rule: {row['rule']}  now: {state}"
            + (f"  ({row['reason']})" if row["reason"] else "")
        )
        for iface in row["interfaces"]:
            now = {True: "authorized", False: "unauthorized", None: "-"}[iface["authorized"]]
            print(
                f"  {iface['name']}  {','.join(iface['classes'])} [{','.join(iface['codes'])}]"
                f"  {iface['action']}  rule: {iface['rule']}  now: {now}"
            )
    return 0


def _allow(args: argparse.Namespace) -> int:
    import os
    import sys

    from boothguard import config
    from boothguard.agent.client import request
    from boothguard.errors import EXIT_PERMISSION, EXIT_USAGE
    from boothguard.usb.exceptions import GrantError, parse_duration

    if os.geteuid() != 0:
        print("boothguard: usb allow needs root", file=sys.stderr)
        return EXIT_PERMISSION
    try:
        seconds = parse_duration(args.duration)
    except GrantError as exc:
        print(f"boothguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    cfg = config.load_agent(args.config, check_permissions=False)
    reply = request(
        cfg.socket_path,
        "usb.allow",
        device=args.device,
        for_seconds=seconds,
        reason=args.reason,
        sudo_user=os.environ.get("SUDO_USER", ""),
    )
    grant = reply["grant"]
    now = ", ".join(reply.get("authorized", [])) or "none present yet"
    print(f"allowed {grant['device']} until {grant['expires_at']} (grant {grant['grant_id']})")
    print(f"authorized now: {now}")
    if not reply.get("enforced", True):
        print("note: usb.mode is not enforce, so nothing was blocked to begin with")
    return 0
