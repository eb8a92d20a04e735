"""config/agent.toml and config/collector.toml: valid, and every key of every section documented."""

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from boothguard.config import AgentConfig, CollectorConfig, load

ROOT = Path(__file__).resolve().parents[2]


def documented_keys(text: str) -> set[tuple[str, str]]:
    keys, section = set(), ""
    for line in text.splitlines():
        bare = line.lstrip("# ").strip()
        if m := re.match(r"^\[\[?([a-z_]+)\.([a-z_]+)[.\]]", bare):  # [[alerts.rules]], [alerts.channels.x]
            keys.add((m.group(1), m.group(2)))
        elif m := re.match(r"^\[([a-z_]+)\]$", bare):
            section = m.group(1)
        elif m := re.match(r"^([a-z_][a-z0-9_]*)\s*=", bare):  # keys may hold digits (x11_check)
            keys.add((section, m.group(1)))
    return keys


@pytest.mark.parametrize(("name", "cls"), [("agent.toml", AgentConfig), ("collector.toml", CollectorConfig)])
def test_example_config_is_valid_and_documents_every_key(name: str, cls: type[BaseModel]) -> None:
    path = ROOT / "config" / name
    load(cls, path, main_required=True, env={}, check_permissions=False)  # type: ignore[type-var]
    documented = documented_keys(path.read_text())
    missing = [
        f"{section}.{key}"
        for section, field in cls.model_fields.items()
        for key in field.annotation.model_fields  # type: ignore[union-attr]
        if (section, key) not in documented
    ]
    assert missing == [], f"{name} does not document: {missing}"


def test_example_agent_config_fails_closed() -> None:
    cfg = load(AgentConfig, ROOT / "config" / "agent.toml", env={}, check_permissions=False)
    assert cfg.usb.mode == "enforce"
