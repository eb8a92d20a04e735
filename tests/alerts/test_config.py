"""Alert rules and channels through the real config loader: valid files load, mistakes name file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from boothguard.config import load_collector
from boothguard.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
[alerts]
throttle_seconds = 120
default_channels = ["soc"]

[alerts.channels.soc]
kind = "syslog"
host = "siem.example"
format = "cef"

[alerts.channels.slack]
kind = "webhook"
url = "https://hooks.example/T000"
min_severity = "high"

[alerts.channels.mail]
kind = "email"
host = "smtp.example"
from_addr = "boothguard@example.com"
to = ["security@example.com"]
password_file = "/etc/boothguard/smtp.password"

[[alerts.rules]]
id = "pii-copy"
types = ["clipboard.copy"]
when = { "data.pii" = ">0" }
severity = "high"
channels = ["slack", "mail"]

[[alerts.rules]]
id = "usb"
types = ["usb.*", "!usb.device.allowed"]
"""


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_collector(path, env={}, check_permissions=False)
    return [str(p) for p in info.value.problems]


def test_a_full_alerts_section_loads(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(GOOD)
    cfg = load_collector(path, env={}, check_permissions=False)
    alerts = cfg.alerts
    assert alerts.throttle_seconds == 120
    assert {n: c.kind for n, c in alerts.channels.items()} == {
        "soc": "syslog",
        "slack": "webhook",
        "mail": "email",
    }
    assert [r.id for r in alerts.rules] == ["pii-copy", "usb"]
    assert alerts.rules[0].when == {"data.pii": ">0"}


@pytest.mark.parametrize(
    ("old", "new", "key", "why"),
    [
        (
            'channels = ["slack", "mail"]',
            'channels = ["slack", "pager"]',
            "alerts.rules.0.channels.1",
            "unknown channel 'pager'",
        ),
        (
            'default_channels = ["soc"]',
            'default_channels = ["soc", "nope"]',
            "alerts.default_channels.1",
            "unknown channel 'nope'",
        ),
        (
            'when = { "data.pii" = ">0" }',
            'when = { "data.pii" = ">lots" }',
            "alerts.rules.0.when.data.pii",
            "needs a number",
        ),
        (
            'when = { "data.pii" = ">0" }',
            'when = { "__class__" = "x" }',
            "alerts.rules.0.when.__class__.[key]",
            "unknown field",
        ),
        (
            'types = ["usb.*", "!usb.device.allowed"]',
            'types = ["USB DEVICE"]',
            "alerts.rules.1.types.0",
            "bad type pattern",
        ),
        ('id = "usb"', 'title = "{host.__class__}"', "alerts.rules.1.title", "unknown field"),
        ('id = "usb"', 'severity = "urgent"', "alerts.rules.1.severity", "Input should be"),
        ('id = "usb"', 'group_by = ["hostname"]', "alerts.rules.1.group_by.0", "unknown field"),
        ('format = "cef"', 'transport = "udp"', "alerts.channels.soc.transport", "Input should be"),
        ('kind = "webhook"', 'kind = "pigeon"', "alerts.channels.slack.kind", "Input should be 'webhook'"),
        (
            'url = "https://hooks.example/T000"',
            'url = "ftp://x"',
            "alerts.channels.slack.url",
            "should match pattern",
        ),
        (
            'url = "https://hooks.example/T000"',
            'url = "https://h/"\nformat = "discord"',
            "alerts.channels.slack.format",
            "Input should be 'json', 'slack' or 'teams'",
        ),
        (
            'url = "https://hooks.example/T000"',
            'url = "https://h/"\ndashboard_url = "https://x/<!channel>"',
            "alerts.channels.slack.dashboard_url",
            "should match pattern",
        ),
        ('to = ["security@example.com"]', "to = []", "alerts.channels.mail.to", "at least 1 item"),
        ('format = "cef"', "retries = 3", "alerts.channels.soc.retries", "unknown key"),
        (
            'url = "https://hooks.example/T000"',
            'url = "https://h/"\ntimeout_seconds = 0',
            "alerts.channels.slack.timeout_seconds",
            "greater than 0",
        ),
    ],
)
def test_mistakes_are_reported_with_file_line_and_key(
    tmp_path: Path, old: str, new: str, key: str, why: str
) -> None:
    assert old in GOOD
    # `new` replaces `old` (or, for a key added next to `id`, follows it); the error names new's last line.
    text = GOOD.replace(old, f"{old}\n{new}" if old in ('id = "usb"', 'format = "cef"') else new, 1)
    line = text.splitlines().index(new.splitlines()[-1]) + 1
    path = tmp_path / "collector.toml"
    path.write_text(text)
    found = problems(path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}:{line}: {key}: "), found
    assert why in found[0]


def test_a_dropin_can_add_a_channel_that_rules_of_the_main_file_use(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(GOOD.replace('channels = ["slack", "mail"]', 'channels = ["pager"]'))
    assert "unknown channel 'pager'" in problems(path)[0]
    (tmp_path / "collector.d").mkdir()
    (tmp_path / "collector.d" / "50-pager.toml").write_text(
        '[alerts.channels.pager]\nkind = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
    )
    cfg = load_collector(path, env={}, check_permissions=False)
    assert cfg.alerts.rules[0].channels == ["pager"]


def test_the_shipped_example_config_and_its_commented_examples_are_valid(tmp_path: Path) -> None:
    text = (REPO / "config" / "collector.toml").read_text()
    path = tmp_path / "collector.toml"
    path.write_text(text)
    cfg = load_collector(path, env={}, check_permissions=False)
    assert cfg.alerts.rules == []  # the shipped defaults apply
    # Uncomment the example channels and rules of the [alerts] section: they must load too.
    head, alerts = text.split("\n[alerts]\n", 1)
    example = re.sub(r"(?m)^# (\[|[a-z_]+ = )", r"\1", alerts)
    path.write_text(f"{head}\n[alerts]\n{example}")
    cfg = load_collector(path, env={}, check_permissions=False)
    assert set(cfg.alerts.channels) == {"slack", "teams", "security-mail", "soc-syslog"}
    formats = {n: getattr(c, "format", None) for n, c in cfg.alerts.channels.items()}
    assert (formats["slack"], formats["teams"]) == ("slack", "teams")
    assert [r.id for r in cfg.alerts.rules] == ["card-number-copied", "booth-killed"]
