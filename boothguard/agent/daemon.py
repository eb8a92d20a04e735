"""The agent's composition root (being written: spool, shipper, control socket, heartbeats)."""

from __future__ import annotations

from pathlib import Path

from boothguard.config import AgentConfig


def run(config: AgentConfig, config_path: Path | None) -> int:
    raise NotImplementedError
