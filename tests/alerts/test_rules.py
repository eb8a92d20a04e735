from __future__ import annotations

from typing import Any

import pytest

from boothguard.collector.alerts.defaults import DEFAULT_RULES
from boothguard.collector.alerts.rules import AlertRules
from boothguard.collector.alerts.settings import AlertsSection
from tests.alerts.helpers import obs


def rules(**section: Any) -> AlertRules:
    return AlertRules(AlertsSection.model_validate(section))


def ids(r: AlertRules, o: Any) -> list[str]:
    return [d.rule for d in r.match(o)]


def test_defaults_apply_when_no_rules_are_configured() -> None:
    r = rules()
    assert r.rule_ids == tuple(d.id for d in DEFAULT_RULES)
    stick = {"vendor_id": "0781", "product_id": "5581"}  # the keys the agent sends
    assert ids(r, obs("usb.device.blocked", data=stick)) == ["usb-blocked"]
    assert ids(r, obs("usb.interface.blocked")) == ["usb-blocked"]
    assert ids(r, obs("usb.storage.detected")) == ["usb-blocked"]
    assert ids(r, obs("screenshot.detected")) == ["screen-capture"]
    assert ids(r, obs("screenshot.blocked")) == ["screen-capture"]
    assert ids(r, obs("screen.lock_failed")) == ["lock-failed"]
    assert ids(r, obs("session.watcher_missing")) == ["watcher-missing"]
    assert ids(r, obs("collector.host.silent", data={"reason": "killed"})) == ["host-silent"]
    assert ids(r, obs("spool.gap")) == ["spool-gap"]
    assert ids(r, obs("agent.config_rejected")) == ["config-rejected"]
    assert ids(r, obs("agent.config_override_refused", data={"key": "usb.mode"})) == ["override-refused"]
    assert ids(r, obs("agent.plugin_failed", data={"plugin": "sessions"})) == ["plugin-failed"]
    assert ids(r, obs("clipboard.cleared")) == ["clipboard-cleared"]
    # Routine events raise nothing.
    for quiet in ("agent.heartbeat", "usb.device.allowed", "screen.locked", "away.started", "custom.x"):
        assert r.match(obs(quiet, "high")) == []


def test_default_copy_rule_needs_nonzero_personal_data_counts() -> None:
    r = rules()
    assert ids(r, obs("clipboard.copy", data={"pii": {"credit_card": 1, "phone_jp": 0}})) == [
        "clipboard-personal-data"
    ]
    assert r.match(obs("clipboard.copy", data={"pii": {"credit_card": 0}})) == []
    assert r.match(obs("clipboard.copy", data={"pii": {}})) == []
    assert r.match(obs("clipboard.copy", data={"size": 12})) == []
    (draft,) = r.match(obs("clipboard.copy", data={"pii": {"credit_card": 1, "phone_jp": 2}}))
    assert draft.severity == "high"
    assert draft.title == "Personal data copied on booth-07 by alice (credit_card:1,phone_jp:2)"


def test_chain_tampering_outranks_a_declared_gap() -> None:
    r = rules()
    for kind in ("gap", "backwards", "broken_link", "bad_hash"):
        (draft,) = r.match(obs(f"collector.chain.{kind}", seq_from=10, seq_to=12))
        assert (draft.rule, draft.severity) == ("chain-tampering", "critical")
        assert draft.title == f"Event chain broken on booth-07 (collector.chain.{kind}, seq 10-12)"
        assert draft.group_key == f"host_id=mid-1|rule=chain-tampering|type=collector.chain.{kind}"
    (draft,) = r.match(obs("collector.chain.declared_gap", seq_from=3, seq_to=5))
    assert (draft.rule, draft.severity) == ("chain-declared-gap", "medium")


def test_type_patterns_min_severity_and_inherited_severity() -> None:
    r = rules(
        rules=[
            {"id": "usb-any", "types": ["usb.*", "!usb.device.allowed", "!usb.device.removed"]},
            {"id": "serious", "types": ["*"], "min_severity": "high", "severity": "critical"},
        ]
    )
    assert ids(r, obs("usb.device.blocked")) == ["usb-any"]
    assert ids(r, obs("usb.device.allowed")) == []
    assert ids(r, obs("usb.device.blocked", "high")) == ["usb-any", "serious"]
    drafts = r.match(obs("custom.fraud", "critical"))
    assert [(d.rule, d.severity) for d in drafts] == [("serious", "critical")]
    (draft,) = r.match(obs("usb.storage.detected", "medium"))
    assert draft.severity == "medium"  # no severity in the rule: the observation's own
    assert r.match(obs("custom.fraud", "medium")) == []


@pytest.mark.parametrize(
    ("condition", "data", "expected"),
    [
        (">0", {"n": 1}, True),
        (">0", {"n": 0}, False),
        (">=2", {"n": 2}, True),
        ("<2", {"n": 2}, False),
        ("<=2.5", {"n": 2.5}, True),
        (">0", {"n": {"a": 0, "b": 3}}, True),  # an object of counts compares as its sum
        (">0", {"n": {"a": 0}}, False),
        (">1", {"n": ["x", "y"]}, True),  # a list as its length
        (">0", {"n": "many"}, False),  # not a number: the comparison does not hold
        (">0", {}, False),  # a missing field never matches
        ("!=killed", {}, False),
        ("killed", {"n": "killed"}, True),
        ("==killed", {"n": "shutdown"}, False),
        ("!=killed", {"n": "shutdown"}, True),
        ("~kill*", {"n": "killed_or_network"}, True),
        ("~kill*", {"n": "clean_stop"}, False),
        (8, {"n": 8}, True),
        (8, {"n": "8"}, True),
        (8, {"n": 9}, False),
        (True, {"n": True}, True),
        (True, {"n": False}, False),
        (True, {"n": 1}, False),
        ("true", {"n": True}, True),
    ],
)
def test_data_conditions(condition: Any, data: dict[str, Any], expected: bool) -> None:
    r = rules(rules=[{"id": "c", "types": ["custom.*"], "when": {"data.n": condition}}])
    assert bool(r.match(obs("custom.t", data=data))) is expected


def test_conditions_on_nested_data_and_envelope_fields_all_must_hold() -> None:
    r = rules(
        rules=[
            {
                "id": "night-copy",
                "types": ["clipboard.copy"],
                "when": {"data.pii.credit_card": ">0", "user": "~op*", "host": "booth-07"},
            }
        ]
    )
    assert ids(r, obs("clipboard.copy", user="op12", data={"pii": {"credit_card": 2}})) == ["night-copy"]
    assert r.match(obs("clipboard.copy", user="alice", data={"pii": {"credit_card": 2}})) == []
    assert r.match(obs("clipboard.copy", user="op12", data={"pii": {"phone_jp": 2}})) == []
    assert r.match(obs("clipboard.copy", user=None, data={"pii": {"credit_card": 2}})) == []


def test_group_keys_and_titles_from_safe_fields_only() -> None:
    r = rules(
        rules=[
            {
                "id": "per-user",
                "types": ["screenshot.*"],
                "group_by": ["rule", "host_id", "user", "data.app"],
                "title": "{user} ran {data.app} on {host} [{data.missing}] {severity}",
            }
        ]
    )
    (draft,) = r.match(obs("screenshot.detected", "high", data={"app": "scrot|x\ny"}))
    assert draft.group_key == "rule=per-user|host_id=mid-1|user=alice|data.app=scrot/x y"
    assert draft.title == "alice ran scrot|x y on booth-07 [-] high"
    (other,) = r.match(obs("screenshot.detected", user="bob", data={"app": "scrot|x\ny"}))
    assert other.group_key != draft.group_key
    # Default grouping: host and rule, so every repeat on a booth lands in one alert.
    (a,) = rules().match(obs("usb.device.blocked", data={"vendor_id": "1"}))
    (b,) = rules().match(obs("usb.storage.detected", data={"vendor_id": "2"}))
    assert a.group_key == b.group_key == "host_id=mid-1|rule=usb-blocked"
    # Two booths that share a host name are still two groups: the default key uses the machine-id.
    (c,) = rules().match(obs("usb.device.blocked", host_id="mid-2"))
    assert c.group_key != a.group_key


def test_a_long_value_is_cut_and_a_title_is_bounded() -> None:
    r = rules(rules=[{"id": "x", "types": ["custom.*"], "title": "{data.a}{data.a}{data.a}"}])
    (draft,) = r.match(obs("custom.t", data={"a": "z" * 5000}))
    assert len(draft.title) <= 300


def test_channels_default_to_every_declared_channel_or_default_channels() -> None:
    hook = {"kind": "webhook", "url": "http://127.0.0.1:9/x"}
    r = rules(channels={"slack": hook, "soc": hook}, rules=[{"id": "a", "types": ["usb.*"]}])
    assert r.match(obs("usb.device.blocked"))[0].channels == ("slack", "soc")
    r = rules(
        channels={"slack": hook, "soc": hook},
        default_channels=["soc"],
        rules=[{"id": "a", "types": ["usb.*"]}, {"id": "b", "types": ["usb.*"], "channels": ["slack"]}],
    )
    assert [d.channels for d in r.match(obs("usb.device.blocked"))] == [("soc",), ("slack",)]


def test_disabled_rules_and_section_and_defaults_added_to_own_rules() -> None:
    r = rules(rules=[{"id": "a", "types": ["usb.*"], "enabled": False}])
    assert r.match(obs("usb.device.blocked")) == []
    assert rules(enabled=False).match(obs("usb.device.blocked")) == []
    r = rules(include_default_rules=True, rules=[{"id": "usb-blocked", "types": ["usb.storage.*"]}])
    assert r.rule_ids[0] == "usb-blocked"
    assert len(r.rule_ids) == len(DEFAULT_RULES)  # own rule replaced the default of the same id
    assert ids(r, obs("usb.device.blocked")) == []
    assert ids(r, obs("screen.lock_failed")) == ["lock-failed"]
