import os
import subprocess
import sys
from pathlib import Path

import pytest

from boothguard.config import AgentConfig, CollectorConfig, load_agent, load_collector
from boothguard.configfiles import SECTIONS
from boothguard.errors import ConfigError


def problems(path: Path, env: dict[str, str] | None = None, perms: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_agent(path, env=env or {}, check_permissions=perms)
    return [str(p) for p in info.value.problems]


def test_defaults_fail_closed(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text("")
    cfg = load_agent(tmp_path / "agent.toml", env={})
    assert cfg.usb.mode == "enforce"
    assert cfg.ship.collector_url == ""
    assert cfg.token_file == Path("/var/lib/boothguard/host.token")


def test_unknown_key_wrong_type_and_syntax_name_file_and_line(tmp_path: Path) -> None:
    main = tmp_path / "agent.toml"
    main.write_text('[agent]\nheartbeat_seconds = 5\n\n[usb]\nmdoe = "audit"\n')
    (tmp_path / "agent.d").mkdir()
    (tmp_path / "agent.d" / "10-ship.toml").write_text('[ship]\nbatch_max_events = "many"\n')
    found = problems(main)
    assert f"{main}:5: usb.mdoe: unknown key" in found
    assert any(p.startswith(f"{tmp_path}/agent.d/10-ship.toml:2: ship.batch_max_events:") for p in found)
    main.write_text("[agent\nx = 1\n")
    assert problems(main)[0].startswith(f"{main}:1: -: TOML syntax")


def test_dropins_in_lexical_order_then_environment(tmp_path: Path) -> None:
    main = tmp_path / "agent.toml"
    main.write_text("[agent]\nheartbeat_seconds = 5\n")
    (tmp_path / "agent.d").mkdir()
    (tmp_path / "agent.d" / "20.toml").write_text("[agent]\nheartbeat_seconds = 20\n")
    (tmp_path / "agent.d" / "10.toml").write_text('[agent]\nheartbeat_seconds = 10\n[usb]\nmode = "audit"\n')
    cfg = load_agent(main, env={})
    assert (cfg.agent.heartbeat_seconds, cfg.usb.mode) == (20, "audit")
    cfg = load_agent(main, env={"BOOTHGUARD_USB__MODE": "off"})
    assert cfg.usb.mode == "off"


def test_environment_typo_is_an_error(tmp_path: Path) -> None:
    main = tmp_path / "agent.toml"
    main.write_text("")
    assert problems(main, {"BOOTHGUARD_USB__MDOE": "off"}) == [
        "environment BOOTHGUARD_USB__MDOE: usb.mdoe: unknown key"
    ]


@pytest.mark.parametrize(
    ("name", "hint"),
    [("BOOTHGUARD_USBB__MODE", "unknown section 'usbb'"), ("BOOTHGUARD_USB_MODE", "two underscores")],
)
def test_environment_section_typo_is_an_error(tmp_path: Path, name: str, hint: str) -> None:
    main = tmp_path / "agent.toml"
    main.write_text("")
    found = problems(main, {name: "enforce"})
    assert len(found) == 1
    assert found[0].startswith(f"environment {name}: -: ")
    assert hint in found[0]
    with pytest.raises(ConfigError):  # the collector's config reads the same rule
        load_collector(main, env={name: "x"}, check_permissions=False)


def test_environment_names_that_are_not_config_and_other_process_sections_pass(tmp_path: Path) -> None:
    main = tmp_path / "agent.toml"
    main.write_text("")
    env = {
        "BOOTHGUARD_TEST_CACHE": "/tmp/x",
        "BOOTHGUARD_STRONG_IDS": "1",
        "BOOTHGUARD_COLLECTOR__LISTEN": "x",
    }
    assert load_agent(main, env=env).usb.mode == "enforce"
    assert load_collector(main, env={"BOOTHGUARD_USB__MODE": "off", "BOOTHGUARD_TEST_CACHE": "/x"})


def test_the_section_list_matches_the_models() -> None:
    assert frozenset(AgentConfig.model_fields) | frozenset(CollectorConfig.model_fields) == SECTIONS


def test_environment_section_typo_stops_the_agent_with_78(tmp_path: Path) -> None:
    main = tmp_path / "agent.toml"
    main.write_text("")
    main.chmod(0o600)
    env = {**os.environ, "BOOTHGUARD_USBB__MODE": "enforce"}
    out = subprocess.run(
        [sys.executable, "-m", "boothguard", "agent", "--config", str(main)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert out.returncode == 78, out
    assert "BOOTHGUARD_USBB__MODE" in out.stdout + out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="permission checks apply when running as root")
def test_loose_permissions_refused_as_root(tmp_path: Path) -> None:
    main = tmp_path / "agent.toml"
    main.write_text("")
    main.chmod(0o666)
    assert "group- or world-writable" in problems(main, perms=True)[0]
    main.chmod(0o644)
    os.chown(main, 1000, 0)
    assert "not root" in problems(main, perms=True)[0]


def test_config_check_cli_exit_78(tmp_path: Path) -> None:
    main = tmp_path / "agent.toml"
    main.write_text('[usb]\nmode = "sometimes"\n')
    out = subprocess.run(
        [sys.executable, "-m", "boothguard", "config", "check", "--config", str(main)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 78
    assert out.stdout.startswith(f"{main}:2: usb.mode:")
    main.write_text('[usb]\nmode = "audit"\n')
    main.chmod(0o600)
    out = subprocess.run(
        [sys.executable, "-m", "boothguard", "config", "check", "--config", str(main)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (out.returncode, out.stdout.strip()) == (0, "ok")


def test_error_about_a_missing_key_points_at_its_table(tmp_path: Path) -> None:
    main = tmp_path / "agent.toml"
    main.write_text(
        '[usb]\nmode = "audit"\n\n[[usb.rules]]\nid = "a"\naction = "allow"\n\n[[usb.rules]]\nid = "b"\n'
    )
    found = problems(main)
    assert any(p.startswith(f"{main}:8: usb.rules.1.action:") for p in found), found
