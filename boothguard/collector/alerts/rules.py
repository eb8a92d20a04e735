"""Rules: observation → alert drafts. Every enabled rule that matches gives one draft."""

from __future__ import annotations

from dataclasses import dataclass

from boothguard.collector.alerts.conditions import Condition, compile_condition, type_matches
from boothguard.collector.alerts.defaults import DEFAULT_RULES
from boothguard.collector.alerts.model import AlertDraft, Observation
from boothguard.collector.alerts.settings import AlertsSection, RuleSpec
from boothguard.collector.alerts.template import as_text, field_value, render
from boothguard.events import SEVERITY_RANK


@dataclass(frozen=True)
class _Rule:
    spec: RuleSpec
    conditions: tuple[Condition, ...]
    channels: tuple[str, ...]


def effective_rules(section: AlertsSection) -> tuple[RuleSpec, ...]:
    """The configured rules, or the shipped defaults when none are configured."""
    if not section.rules:
        return DEFAULT_RULES
    if section.include_default_rules:
        own = {r.id for r in section.rules}
        return (*section.rules, *(r for r in DEFAULT_RULES if r.id not in own))
    return tuple(section.rules)


def group_key(spec: RuleSpec, obs: Observation) -> str:
    parts = []
    for name in spec.group_by:
        value = spec.id if name == "rule" else field_value(obs, name, spec.id)
        text = as_text(value, limit=200).replace("|", "/")
        parts.append(f"{name}={text}")
    return "|".join(parts)


class AlertRules:
    def __init__(self, section: AlertsSection) -> None:
        default_channels = (
            tuple(section.default_channels)
            if section.default_channels is not None
            else tuple(section.channels)
        )
        self._rules = tuple(
            _Rule(
                spec,
                tuple(compile_condition(f, v) for f, v in spec.when.items()),
                tuple(spec.channels) if spec.channels is not None else default_channels,
            )
            for spec in effective_rules(section)
            if spec.enabled
        )
        self._enabled = section.enabled
        # Per event type, the rules whose type patterns take it (bounded; types are few in practice).
        self._by_type: dict[str, tuple[_Rule, ...]] = {}

    def _candidates(self, event_type: str) -> tuple[_Rule, ...]:
        found = self._by_type.get(event_type)
        if found is None:
            found = tuple(r for r in self._rules if type_matches(event_type, r.spec.types))
            if len(self._by_type) < 4096:
                self._by_type[event_type] = found
        return found

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.spec.id for r in self._rules)

    def match(self, obs: Observation) -> list[AlertDraft]:
        if not self._enabled:
            return []
        candidates = self._candidates(obs.type)
        if not candidates:
            return []
        rank = SEVERITY_RANK.get(obs.severity, 0)
        drafts = []
        for rule in candidates:
            spec = rule.spec
            if rank < SEVERITY_RANK[spec.min_severity]:
                continue
            if not all(c.holds(obs) for c in rule.conditions):
                continue
            drafts.append(
                AlertDraft(
                    rule=spec.id,
                    severity=spec.severity or obs.severity,
                    title=render(spec.title, obs, spec.id),
                    group_key=group_key(spec, obs),
                    channels=rule.channels,
                    observation=obs,
                )
            )
        return drafts
