"""Check results and the probe (everything a check may look at, passed in)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from boothguard import config
from boothguard.errors import ConfigError

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "fix": self.fix,
            "facts": dict(self.facts),
        }


@dataclass
class Probe:
    """The machine as the checks see it. `config` is the agent's (defaults when it did not load)."""

    config: config.AgentConfig
    config_path: Path | None
    config_problems: list[str]
    env: Mapping[str, str]
    root: Path = Path("/")  # where units and udev rules are looked up
    timeout: float = 3.0
    config_refused: list[str] = field(default_factory=list)  # local values the collector's policy refused

    @classmethod
    def from_system(cls, config_path: Path | None, timeout: float = 3.0, root: Path = Path("/")) -> Probe:
        return cls.load(config_path, env=dict(os.environ), timeout=timeout, root=root)

    @classmethod
    def load(
        cls, config_path: Path | None, env: Mapping[str, str], timeout: float = 3.0, root: Path = Path("/")
    ) -> Probe:
        problems: list[str] = []
        try:
            cfg = config.load_agent(config_path, env=env)
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems]
            cfg = config.AgentConfig()
        refused = [str(r) for r in cfg.refused_overrides]
        return cls(cfg, config_path, problems, env, root, timeout, refused)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")
