"""Real agent events → the collector's shipped alert rules: which rules match, and which fields they name
(title placeholders, `when` conditions, `group_by`) the event does not carry.

The observation is built from the event exactly as the collector's ingest builds it
(`collector.alert_store.observe`), then matched and rendered by `collector.alerts.rules.AlertRules` with the
default `[alerts]` section — the shipped rules, templates and grouping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from boothguard.collector.alerts.defaults import DEFAULT_RULES
from boothguard.collector.alerts.model import Observation
from boothguard.collector.alerts.rules import AlertRules
from boothguard.collector.alerts.settings import AlertsSection, RuleSpec
from boothguard.collector.alerts.template import MISSING, field_value

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_RULES = {r.id: r for r in DEFAULT_RULES}


def placeholders(spec: RuleSpec) -> list[str]:
    return _PLACEHOLDER.findall(spec.title)


def named_fields(spec: RuleSpec) -> list[str]:
    """Every field the rule reads: its title's placeholders and its group_by (`when` decides the match)."""
    return [*placeholders(spec), *(f for f in spec.group_by if f != "rule")]


def observation(ev: dict[str, Any]) -> Observation:
    return Observation(
        type=ev["type"],
        severity=ev["severity"],
        host_id=ev["host"]["id"],
        host_name=ev["host"]["name"],
        data=ev["data"],
        user=ev.get("user"),
        seq_from=ev["seq"],
        seq_to=ev["seq"],
        event_id=ev["id"],
    )


@dataclass
class Report:
    titles: dict[str, list[str]] = field(default_factory=dict)  # rule id → rendered titles
    # (event type, rule, field) of `data.*` fields the event lacks: the agent and the rule disagree.
    unresolved: list[tuple[str, str, str]] = field(default_factory=list)
    # The same for the envelope's fields (`user`: an event about no session may have none).
    unresolved_other: list[tuple[str, str, str]] = field(default_factory=list)

    def matched(self) -> set[str]:
        return set(self.titles)


def check(events: Iterable[dict[str, Any]]) -> Report:
    rules = AlertRules(AlertsSection())
    report = Report()
    for ev in events:
        obs = observation(ev)
        for draft in rules.match(obs):
            spec = _RULES[draft.rule]
            report.titles.setdefault(draft.rule, []).append(draft.title)
            for name in named_fields(spec):
                value = field_value(obs, name, spec.id)
                if value is MISSING or value is None or value == "":
                    into = report.unresolved if name.startswith("data.") else report.unresolved_other
                    into.append((ev["type"], spec.id, name))
    return report
