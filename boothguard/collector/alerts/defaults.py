"""The shipped rules, used when the config lists none (or with `include_default_rules = true`).

Every `{data.KEY}` here must be a key the agent emits for each of the rule's types (the agent's
usb/report.py, session/clipboard_events.py, spool/…): tests/contract checks this statically and against
the events the real agent produces in the umockdev, Xvfb and lock scenarios."""

from __future__ import annotations

from boothguard.collector.alerts.settings import RuleSpec

DEFAULT_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        id="usb-blocked",
        types=["usb.device.blocked", "usb.interface.blocked", "usb.storage.detected"],
        severity="high",
        title="USB device blocked on {host} ({type}, {data.vendor_id}:{data.product_id})",
    ),
    RuleSpec(
        id="clipboard-personal-data",
        types=["clipboard.copy"],
        when={"data.pii": ">0"},
        severity="high",
        title="Personal data copied on {host} by {user} ({data.pii})",
    ),
    RuleSpec(
        id="clipboard-cleared",
        types=["clipboard.cleared"],
        severity="medium",
        title="Clipboard cleared on {host} for {user}",
    ),
    RuleSpec(
        id="screen-capture",
        types=["screenshot.detected", "screenshot.blocked"],
        severity="high",
        title="Screen capture on {host} by {user} ({type})",
    ),
    RuleSpec(
        id="lock-failed",
        types=["screen.lock_failed"],
        severity="critical",
        title="Screen lock failed on {host} for {user}",
    ),
    RuleSpec(
        id="watcher-missing",
        types=["session.watcher_missing"],
        severity="high",
        title="Session watcher missing on {host} for {user}",
    ),
    RuleSpec(
        id="chain-tampering",
        types=["collector.chain.*", "!collector.chain.declared_gap"],
        severity="critical",
        title="Event chain broken on {host} ({type}, seq {seq_from}-{seq_to})",
        group_by=["host_id", "rule", "type"],
    ),
    RuleSpec(
        id="chain-declared-gap",
        types=["collector.chain.declared_gap"],
        severity="medium",
        title="Declared event gap on {host} (seq {seq_from}-{seq_to})",
    ),
    RuleSpec(
        id="host-silent",
        types=["collector.host.silent"],
        severity="high",
        title="Host {host} silent: {data.reason}",
    ),
    RuleSpec(
        id="spool-gap",
        types=["spool.gap"],
        severity="medium",
        title="Agent on {host} lost {data.count} events ({data.reason})",
    ),
    RuleSpec(
        id="config-rejected",
        types=["agent.config_rejected"],
        severity="medium",
        title="Agent on {host} rejected a new config",
    ),
    RuleSpec(
        # A booth-local file trying to undo security's policy (the operator or local IT): kept out, and said.
        id="override-refused",
        types=["agent.config_override_refused"],
        severity="medium",
        title="Local config on {host} tried to override policy key {data.key}",
        group_by=["host_id", "rule", "data.key"],
    ),
    RuleSpec(
        # The agent keeps running without the plugin (isolated failure): what it no longer watches must reach
        # security, not only the booth's journal.
        id="plugin-failed",
        types=["agent.plugin_failed"],
        severity="high",
        title="Agent on {host}: plugin {data.plugin} failed to start",
    ),
)
