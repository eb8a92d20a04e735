"""Alert titles in the viewer's language. A shipped rule's title is rendered again from the catalog's
template (`alert_title.RULE`) only when the stored title is exactly what the shipped English template makes
of the same alert: a rule the site retitled, or an alert stored before the alert's user was kept, keeps the
words it was stored with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boothguard.collector.alerts import template
from boothguard.collector.alerts.defaults import DEFAULT_RULES
from boothguard.collector.alerts.model import Observation
from boothguard.collector.web.i18n import Translator

_SHIPPED = {rule.id: rule.title for rule in DEFAULT_RULES}


def localized(alert: Mapping[str, Any], t: Translator) -> str:
    title = str(alert.get("title") or "")
    rule = str(alert.get("rule") or "")
    shipped = _SHIPPED.get(rule)
    own = t.own(f"alert_title.{rule}")
    if shipped is None or own is None:
        return title
    try:
        obs = Observation(
            type=alert["event_type"],
            severity=alert["severity"],
            host_id=alert["host_id"],
            host_name=alert["host_name"],
            data=dict(alert.get("data") or {}),
            user=alert.get("user"),
            seq_from=alert.get("seq_from"),
            seq_to=alert.get("seq_to"),
        )
    except KeyError:  # a row without the fields the template reads
        return title
    if template.render(shipped, obs, rule)[:512] != title:
        return title
    return template.render(own, obs, rule)
