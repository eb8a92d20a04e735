"""What the long-lived processes must not keep resident (RSS targets of issues 2 and 6)."""

from __future__ import annotations

import subprocess
import sys


def _loaded(code: str) -> set[str]:
    run = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(run.stdout.split())


def test_the_agent_does_not_load_the_collector_config() -> None:
    loaded = _loaded(
        "from boothguard.cli import build_parser\nbuild_parser()\n"
        "from boothguard import config, log\nlog.setup(json_output=True)\n"
        "import boothguard.agent.daemon\nconfig.load_agent(None, env={})\n"
        "log.get('x').info('hello')"
    )
    assert "boothguard.config" in loaded
    assert not {"boothguard.config_collector", "boothguard.collector.settings"} & loaded


def test_collector_config_still_importable_from_config() -> None:
    loaded = _loaded("from boothguard.config import CollectorConfig\nassert CollectorConfig().collector")
    assert "boothguard.collector.settings" in loaded
