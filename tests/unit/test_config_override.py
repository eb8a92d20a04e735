"""The merge with a collector policy in place: later local drop-ins (and the environment) override only the
keys the policy's `local_override` lists; keys the policy does not set stay local; no policy, no change."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from boothguard import config_override
from boothguard.config import AgentConfig, load_agent
from boothguard.errors import ConfigError
from boothguard.policy import policy_hash, problems
from boothguard.policy.dropin import DROPIN_NAME, write

RULE = {"id": "headset", "action": "allow", "vendor_id": "1395", "product_id": "0025"}
LOCAL = """\
[usb]
mode = "audit"

[[usb.rules]]
id = "local-stick"
action = "allow"
vendor_id = "0781"

[clipboard]
enabled = false

[lock]
idle_seconds = 60
"""


def booth(tmp_path: Path, policy: dict[str, Any] | None, local: str = LOCAL) -> Path:
    main = tmp_path / "agent.toml"
    main.write_text('[usb]\nmode = "off"\n')
    dropins = tmp_path / "agent.d"
    dropins.mkdir()
    if policy is not None:
        write(dropins, policy, version=7)
    (dropins / "90-local.toml").write_text(local)
    return main


def load(main: Path, env: dict[str, str] | None = None) -> AgentConfig:
    return load_agent(main, env=env or {}, check_permissions=False)


def test_without_a_policy_local_drop_ins_override_as_before(tmp_path: Path) -> None:
    cfg = load(booth(tmp_path, None))
    assert cfg.usb.mode == "audit"
    assert [r.id for r in cfg.usb.rules] == ["local-stick"]
    assert cfg.refused_overrides == ()


def test_policy_keys_are_kept_and_each_refusal_names_file_line_key_and_version(tmp_path: Path) -> None:
    policy = {"usb": {"mode": "enforce", "rules": [RULE]}, "lock": {"idle_seconds": 120}}
    main = booth(tmp_path, policy)
    cfg = load(main)
    assert cfg.usb.mode == "enforce"
    assert [r.id for r in cfg.usb.rules] == ["headset"]
    assert cfg.lock.idle_seconds == 120
    assert cfg.clipboard.enabled is False  # the policy does not set it: it stays local
    local = str(tmp_path / "agent.d" / "90-local.toml")
    got = {(r.source, r.line, r.key, r.policy_version) for r in cfg.refused_overrides}
    assert got == {(local, 2, "usb.mode", 7), (local, 4, "usb.rules", 7), (local, 13, "lock.idle_seconds", 7)}
    assert {r.policy_hash for r in cfg.refused_overrides} == {policy_hash(policy)}
    assert str(cfg.refused_overrides[0]) == (
        f"{local}:2: usb.mode: local override refused: the collector's policy v7 sets it"
        " and does not list it in local_override"
    )
    data = config_override.override_data(cfg.refused_overrides[0])
    assert data == {
        "file": local,
        "line": 2,
        "key": "usb.mode",
        "policy_version": 7,
        "policy_hash": policy_hash(policy),
    }


def test_listed_keys_and_whole_sections_may_be_overridden(tmp_path: Path) -> None:
    policy = {
        "usb": {"mode": "enforce", "rules": [RULE]},
        "lock": {"idle_seconds": 120},
        "local_override": ["usb.rules", "lock"],
    }
    cfg = load(booth(tmp_path, policy))
    assert [r.id for r in cfg.usb.rules] == ["local-stick"]  # listed: the local list replaces the policy's
    assert cfg.lock.idle_seconds == 60  # the whole section is listed
    assert cfg.usb.mode == "enforce"
    assert [r.key for r in cfg.refused_overrides] == ["usb.mode"]


def test_files_before_the_policy_are_overridden_by_it_without_a_report(tmp_path: Path) -> None:
    main = booth(tmp_path, {"usb": {"mode": "enforce"}}, local="")
    (tmp_path / "agent.d" / "10-site.toml").write_text('[usb]\nmode = "audit"\n')
    cfg = load(main)
    assert cfg.usb.mode == "enforce"
    assert cfg.refused_overrides == ()


def test_the_environment_is_held_to_the_same_rule(tmp_path: Path) -> None:
    main = booth(tmp_path, {"usb": {"mode": "enforce", "rules": [RULE]}, "local_override": ["usb.rules"]})
    cfg = load(main, {"BOOTHGUARD_USB__MODE": "off", "BOOTHGUARD_CLIPBOARD__ENABLED": "true"})
    assert cfg.usb.mode == "enforce"
    assert cfg.clipboard.enabled is True  # not set by the policy
    assert [(r.source, r.key) for r in cfg.refused_overrides if r.line is None] == [
        ("environment BOOTHGUARD_USB__MODE", "usb.mode")
    ]
    # A whole section as JSON: only the refused key is dropped, the rest applies.
    cfg = load(main, {"boothguard_usb": '{"mode": "audit", "storage_safety_net": false}'})
    assert (cfg.usb.mode, cfg.usb.storage_safety_net) == ("enforce", False)
    assert [r.key for r in cfg.refused_overrides if r.line is None] == ["usb.mode"]


def test_without_a_policy_the_environment_still_overrides(tmp_path: Path) -> None:
    cfg = load(booth(tmp_path, None, local=""), {"BOOTHGUARD_USB__MODE": "off"})
    assert cfg.usb.mode == "off"
    assert cfg.refused_overrides == ()


def test_a_local_file_cannot_grant_itself_an_override(tmp_path: Path) -> None:
    grab = 'local_override = ["usb"]\n[usb]\nmode = "off"\n'
    main = booth(tmp_path, {"usb": {"mode": "enforce"}}, local=grab)
    with pytest.raises(ConfigError) as info:
        load(main)
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path}/agent.d/90-local.toml:1: local_override: "
        "local_override is set by the collector's policy only, not by a local file"
    ]


def test_a_hand_broken_override_list_in_the_managed_drop_in_is_a_config_error(tmp_path: Path) -> None:
    main = booth(tmp_path, {"usb": {"mode": "enforce"}}, local="")
    managed = tmp_path / "agent.d" / DROPIN_NAME
    managed.write_text('local_override = "usb"\n[usb]\nmode = "enforce"\n')
    with pytest.raises(ConfigError) as info:
        load(main)
    assert "local_override must be a list" in str(info.value)


def test_the_drop_in_carries_the_list_as_a_top_level_key(tmp_path: Path) -> None:
    policy = {"usb": {"mode": "enforce"}, "local_override": ["usb.rules"]}
    write(tmp_path, policy, version=3)
    text = (tmp_path / DROPIN_NAME).read_text()
    assert tomllib.loads(text) == policy
    assert text.index("local_override") < text.index("[usb]")


@pytest.mark.parametrize(
    ("entry", "code"),
    [
        ("usb.mod", "override_unknown"),
        ("ship.collector_url", "override_unknown"),
        ("agent", "override_unknown"),
        ("usb.", "override_unknown"),
        ("usb.rules.0", "override_unknown"),
        ("", "override_unknown"),
        ("usb.sysfs_root", "override_local_only"),
    ],
)
def test_override_entries_are_checked_against_the_agent_models(entry: str, code: str) -> None:
    [problem] = problems({"usb": {"mode": "enforce"}, "local_override": ["usb.rules", entry]})
    assert (problem.key, problem.code, problem.subject) == ("local_override.1", code, entry)
    assert repr(entry) in problem.reason


def test_override_list_shape_is_checked() -> None:
    assert [p.key for p in problems({"local_override": "usb"})] == ["local_override"]
    assert [p.key for p in problems({"local_override": [1]})] == ["local_override.0"]
    assert [p.key for p in problems({"local_override": ["usb"] * 65})] == ["local_override"]
    assert problems({"usb": {}, "local_override": ["usb", "clipboard.enabled", "lock.idle_seconds"]}) == []


def test_doctor_warns_with_each_refused_local_value(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    main = booth(tmp_path, {"usb": {"mode": "enforce"}, "lock": {"idle_seconds": 120}})
    main.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\nruntime_dir = "{tmp_path / "run"}"\n'
        '[usb]\nmode = "enforce"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTHGUARD_")}
    run = subprocess.run(
        [sys.executable, "-m", "boothguard", "doctor", "--json", "--timeout", "1", "--config", str(main),
         "--root", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr
    checks = {c["name"]: c for c in json.loads(run.stdout)["checks"]}
    assert checks["config"]["status"] == "ok"  # valid, and enforcing
    refused = checks["local overrides"]
    assert refused["status"] == "warn"
    assert "2 local value(s) ignored" in refused["detail"]
    local = tmp_path / "agent.d" / "90-local.toml"
    assert refused["facts"]["refused"] == [
        f"{local}:2: usb.mode: local override refused: the collector's policy v7 sets it"
        " and does not list it in local_override",
        f"{local}:13: lock.idle_seconds: local override refused: the collector's policy v7 sets it"
        " and does not list it in local_override",
    ]
    assert "local_override" in refused["fix"]


def test_each_refusal_is_reported_once_while_it_stands(tmp_path: Path) -> None:
    import asyncio

    from boothguard.agent.policy_apply import OverrideReporter
    from boothguard.events import Draft

    sent: list[Draft] = []

    async def emit(draft: Draft) -> None:
        sent.append(draft)

    main = booth(tmp_path, {"usb": {"mode": "enforce"}}, local='[usb]\nmode = "audit"\n')
    reporter = OverrideReporter(emit)
    asyncio.run(reporter.report(load(main)))
    asyncio.run(reporter.report(load(main)))  # a SIGHUP with nothing changed
    assert [(d.type, d.data["key"]) for d in sent] == [("agent.config_override_refused", "usb.mode")]
    (tmp_path / "agent.d" / "90-local.toml").write_text("")
    asyncio.run(reporter.report(load(main)))
    (tmp_path / "agent.d" / "90-local.toml").write_text('[usb]\nmode = "audit"\n')
    asyncio.run(reporter.report(load(main)))  # gone, then back: said again
    assert len(sent) == 2
