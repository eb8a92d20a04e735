"""Field access on observations, shared by conditions, group keys and title templates. No eval, no format().

Fields: host (name), host_id, host_name, user, type, severity, rule, seq_from, seq_to, event_id, and
`data.KEY[.KEY…]` into the observation's data.
"""

from __future__ import annotations

import re
from typing import Any

from boothguard.collector.alerts.model import Observation

FIELDS = frozenset(
    {"host", "host_id", "host_name", "user", "type", "severity", "rule", "seq_from", "seq_to", "event_id"}
)
_DATA_RE = re.compile(r"^data(\.[A-Za-z0-9_\-]+)+$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_TITLE = 300
MAX_VALUE = 120
MISSING = object()


def check_field(name: str) -> str:
    if name in FIELDS or _DATA_RE.match(name):
        return name
    raise ValueError(f"unknown field {name!r}: use one of {', '.join(sorted(FIELDS))} or data.KEY")


def check_template(text: str) -> str:
    if len(text) > MAX_TITLE:
        raise ValueError(f"title template longer than {MAX_TITLE} characters")
    for name in _PLACEHOLDER.findall(text):
        check_field(name)
    return text


def field_value(obs: Observation, name: str, rule: str = "") -> Any:
    """The field's value, or MISSING."""
    if name.startswith("data."):
        value: Any = obs.data
        for part in name.split(".")[1:]:
            if not isinstance(value, dict) or part not in value:
                return MISSING
            value = value[part]
        return value
    value = {
        "host": obs.host_name,
        "host_name": obs.host_name,
        "host_id": obs.host_id,
        "user": obs.user,
        "type": obs.type,
        "severity": obs.severity,
        "rule": rule,
        "seq_from": obs.seq_from,
        "seq_to": obs.seq_to,
        "event_id": obs.event_id,
    }.get(name, MISSING)
    return MISSING if value is None else value


def as_text(value: Any, limit: int = MAX_VALUE) -> str:
    if value is MISSING:
        return "-"
    if isinstance(value, dict):
        text = ",".join(f"{k}:{v}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0])))
    elif isinstance(value, list):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    text = _CONTROL.sub(" ", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(template: str, obs: Observation, rule: str = "") -> str:
    text = _PLACEHOLDER.sub(lambda m: as_text(field_value(obs, m.group(1), rule)), template)
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "…"
