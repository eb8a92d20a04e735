"""The watcher's plain policy copies and its pydantic-free socket lookup agree with the agent's models."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from boothguard import config
from boothguard.configfiles import Unsure, agent_socket_path
from boothguard.errors import ConfigError
from boothguard.session.policy import ClipboardPolicy, PolicyError, ScreenshotPolicy, from_message
from boothguard.session.settings import ClipboardSection, ScreenshotSection
from boothguard.session.watcher import Watcher, WatcherOptions

PAIRS: list[tuple[Any, Any]] = [(ClipboardPolicy, ClipboardSection), (ScreenshotPolicy, ScreenshotSection)]


def _as_tuples(values: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


@pytest.mark.parametrize(("policy", "section"), PAIRS)
def test_same_names_and_defaults_as_the_settings_models(policy: Any, section: Any) -> None:
    assert [f.name for f in dataclasses.fields(policy)] == list(section.model_fields)
    assert dataclasses.asdict(policy()) == _as_tuples(section().model_dump(mode="json"))
    assert from_message(policy, section().model_dump(mode="json")) == policy()


def test_what_the_agent_sends_arrives_unchanged() -> None:
    clip = ClipboardSection(policy="clear", allow_apps=["crm"], watch_primary=True, max_read_bytes=2048)
    shot = ScreenshotSection(
        policy="quarantine", tools=["scrot"], dirs=["~/x"], dedupe_seconds=0, min_pixels=1
    )
    for section, policy in ((clip, ClipboardPolicy), (shot, ScreenshotPolicy)):
        sent = json.loads(json.dumps(section.model_dump(mode="json")))  # over the socket
        got = from_message(policy, sent)
        assert dataclasses.asdict(got) == _as_tuples(section.model_dump(mode="json"))


@pytest.mark.parametrize(
    "bad",
    [
        {"surprise": 1},
        {"policy": "shred"},
        {"enabled": "yes"},
        {"max_read_bytes": True},
        {"max_read_bytes": 1.5},
        {"convert_timeout_seconds": "2"},
        {"convert_timeout_seconds": float("nan")},
        {"watcher_heartbeat_seconds": -1},
        {"allow_apps": "crm"},
        {"allow_apps": ["crm", 3]},
    ],
)
def test_a_bad_policy_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        from_message(ClipboardPolicy, bad)


def test_the_watcher_keeps_its_policy_when_a_push_is_refused(tmp_path: Path) -> None:
    opts = WatcherOptions(tmp_path / "s.sock", None, None, "c1", tmp_path, "op")
    w = Watcher(opts)
    w._apply_policy({"clipboard": {"policy": "clear"}, "screenshot": {"policy": "kill"}})
    assert (w.clip.policy, w.shot.policy) == ("clear", "kill")
    w._apply_policy({"clipboard": {"policy": "shred"}})
    assert w.clip.policy == "clear"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


CASES: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("", {}, {}),
    ('[agent]\nruntime_dir = "/r/main"\n', {}, {}),
    ('[agent]\nruntime_dir = "/r/main"\n', {"10-x.toml": '[agent]\nruntime_dir = "/r/dropin"\n'}, {}),
    ('[agent]\nruntime_dir = "/r/main"\n', {}, {"BOOTHGUARD_AGENT__RUNTIME_DIR": "/r/env"}),
    ('[agent]\nruntime_dir = "/r/main"\n', {}, {"boothguard_agent__runtime_dir": "/r/lower"}),
    ('[usb]\nmode = "off"\n', {}, {"BOOTHGUARD_AGENT": '{"runtime_dir": "/r/json"}'}),
    (
        "",
        {},
        {"BOOTHGUARD_AGENT": '{"runtime_dir": "/r/json"}', "BOOTHGUARD_AGENT__RUNTIME_DIR": "/r/nested"},
    ),
    ('[agent]\nstate_dir = "/s"\n', {}, {"BOOTHGUARD_AGENT": '{"heartbeat_seconds": 5}'}),
    ("", {}, {"BOOTHGUARD_USB__MODE": "off", "OTHER": "x"}),
]


@pytest.mark.parametrize(("main", "dropins", "env"), CASES)
def test_socket_path_as_the_agent_config_has_it(
    tmp_path: Path, main: str, dropins: dict[str, str], env: dict[str, str]
) -> None:
    path = _write(tmp_path / "agent.toml", main)
    for name, text in dropins.items():
        _write(tmp_path / "agent.d" / name, text)
    full = config.load_agent(path, env=env, check_permissions=False).socket_path
    assert agent_socket_path(path, env) == full


def test_what_the_light_reader_cannot_judge_goes_to_the_full_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        agent_socket_path(tmp_path / "absent.toml", {})
    assert "file not found" in str(missing.value)
    with pytest.raises(ConfigError) as syntax:
        agent_socket_path(_write(tmp_path / "bad.toml", "[agent\n"), {})
    assert "TOML syntax" in str(syntax.value)
    for text, env in (
        ("[agent]\nruntime_dir = 5\n", {}),
        ("agent = 1\n", {}),
        ("", {"BOOTHGUARD_AGENT": "{"}),
    ):
        path = _write(tmp_path / "odd.toml", text)
        with pytest.raises(Unsure):
            agent_socket_path(path, env)
        with pytest.raises(ConfigError):
            config.load_agent(path, env=env, check_permissions=False)


def test_session_command_exits_78_on_a_broken_config_and_never_loads_pydantic(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.toml", "[agent]\nruntime_dir = 5\n")
    out = subprocess.run(
        [sys.executable, "-m", "boothguard", "session", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert out.returncode == 78, out.stderr
    assert "agent.runtime_dir" in out.stderr
    good = _write(tmp_path / "good.toml", f'[agent]\nruntime_dir = "{tmp_path}"\n')
    code = (
        "import sys\n"
        "from boothguard.cli import build_parser\n"
        "from boothguard.session import commands, watcher\n"
        "build_parser()\n"
        f"print(commands.agent_socket(__import__('pathlib').Path({str(good)!r}), None))\n"
        "heavy = {'pydantic', 'pydantic_settings'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.splitlines() == [str(tmp_path / "agent.sock"), "[]"]
