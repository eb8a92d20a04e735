"""The `[alerts]` section: rules (`[[alerts.rules]]`), channels (`[alerts.channels.NAME]`), throttling.

Cross-references (a rule naming a channel that is not declared) are checked while the section validates, and
the error is placed on the offending key so the config loader reports its file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    model_validator,
)

from boothguard.collector.alerts.conditions import parse_condition, parse_type_pattern
from boothguard.collector.alerts.template import check_field, check_template
from boothguard.events import Severity
from boothguard.section import Section

# Channel names the section being validated declares; None outside a section (rules built in code).
_DECLARED: ContextVar[frozenset[str] | None] = ContextVar("boothguard_alert_channels", default=None)

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)


def _known_channel(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"channel name {name!r} must match {NAME_PATTERN}")
    declared = _DECLARED.get()
    if declared is not None and name not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise ValueError(f"unknown channel {name!r} (declared: {known})")
    return name


ChannelRef = Annotated[str, AfterValidator(_known_channel)]
TypePattern = Annotated[str, AfterValidator(parse_type_pattern)]
GroupField = Annotated[str, AfterValidator(check_field)]
Title = Annotated[str, AfterValidator(check_template)]
ConditionValue = Annotated[str | bool | int | float, AfterValidator(parse_condition)]


class RuleSpec(Section):
    """One alert rule. Every matching rule produces its own alert draft (rules are not first-match)."""

    id: str = Field(pattern=NAME_PATTERN)
    # fnmatch patterns on the event type; a leading "!" excludes (checked after the includes).
    types: list[TypePattern] = Field(min_length=1)
    # The observation's severity must be at least this.
    min_severity: Severity = "info"
    # Conditions on fields, all of which must hold: {"data.pii" = ">0", "data.reason" = "killed"}.
    when: dict[Annotated[str, AfterValidator(check_field)], ConditionValue] = Field(default_factory=dict)
    # The alert's severity; unset = the observation's own severity.
    severity: Severity | None = None
    title: Title = "{type} on {host}"
    # Fields whose values form the group key: repeats with the same key group into one alert.
    group_by: list[GroupField] = Field(default_factory=lambda: ["host_id", "rule"], min_length=1)
    # Channel names; unset = `alerts.default_channels`.
    channels: list[ChannelRef] | None = None
    # Overrides `alerts.throttle_seconds` for this rule's repeats.
    throttle_seconds: float | None = Field(default=None, ge=0)
    enabled: bool = True


class _ChannelBase(Section):
    # Only alerts at or above this severity are sent on this channel.
    min_severity: Severity = "info"
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)


class WebhookChannelSpec(_ChannelBase):
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token_file: Path | None = None
    # CA bundle to verify an https URL; unset = the system store.
    ca_file: Path | None = None
    # Body shape: "json" (generic: `text`, Slack-style `attachments`, the alert under `alert`), "slack"
    # (incoming-webhook `text` + Block Kit `blocks`) or "teams" (a message with an Adaptive Card).
    format: Literal["json", "slack", "teams"] = "json"
    # The dashboard as people reach it (e.g. https://collector.example:8443); set = "slack" and "teams"
    # messages link to the alert there. No spaces, quotes, `<`, `>` or `|` (Slack link syntax).
    dashboard_url: str = Field(default="", pattern=r'^(https?://[^\s<>|"`]+)?$')


class EmailChannelSpec(_ChannelBase):
    kind: Literal["email"]
    # As for webhooks: set = the mail links to the alert on the dashboard.
    dashboard_url: str = Field(default="", pattern=r'^(https?://[^\s<>|"`]+)?$')
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    # "starttls" (port 587), "tls" (implicit, port 465) or "none" (only for a relay on localhost).
    security: Literal["starttls", "tls", "none"] = "starttls"
    ca_file: Path | None = None
    username: str = ""
    password_file: Path | None = None
    from_addr: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    subject_prefix: str = "[boothguard]"


class SyslogChannelSpec(_ChannelBase):
    kind: Literal["syslog"]
    host: str
    port: int = Field(default=6514, ge=1, le=65535)
    # "tcp" = RFC 6587 octet counting over plain TCP; "tls" = RFC 5425.
    transport: Literal["tcp", "tls"] = "tls"
    ca_file: Path | None = None
    # Client certificate for servers that require mutual TLS.
    cert_file: Path | None = None
    key_file: Path | None = None
    format: Literal["json", "cef"] = "json"
    facility: Literal[
        "kern",
        "user",
        "auth",
        "daemon",
        "authpriv",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ] = "auth"
    app_name: str = Field(default="boothguard", pattern=r"^[!-~]{1,48}$")
    # HOSTNAME field; empty = this collector's host name.
    hostname: str = Field(default="", pattern=r"^[!-~]{0,255}$")
    # SD-ID of the structured-data element (32473 is the documentation enterprise number, RFC 5612).
    sd_id: str = Field(default="boothguard@32473", pattern=r"^[!-~]+@[0-9.]+$")


class _Kind(Section):
    model_config = ConfigDict(extra="ignore", frozen=True)
    kind: Literal["webhook", "email", "syslog"]


_KINDS: dict[str, type[WebhookChannelSpec | EmailChannelSpec | SyslogChannelSpec]] = {
    "webhook": WebhookChannelSpec,
    "email": EmailChannelSpec,
    "syslog": SyslogChannelSpec,
}


def _channel_by_kind(value: Any) -> WebhookChannelSpec | EmailChannelSpec | SyslogChannelSpec:
    # Dispatching by hand (not a pydantic discriminated union) keeps error locations free of the tag, so
    # the config loader can name the offending key's file and line.
    if isinstance(value, WebhookChannelSpec | EmailChannelSpec | SyslogChannelSpec):
        return value
    kind = _Kind.model_validate(value).kind
    return _KINDS[kind].model_validate(value)


ChannelSpec = Annotated[
    WebhookChannelSpec | EmailChannelSpec | SyslogChannelSpec, PlainValidator(_channel_by_kind)
]


@contextmanager
def _declaring(names: frozenset[str]) -> Iterator[None]:
    token = _DECLARED.set(names)
    try:
        yield
    finally:
        _DECLARED.reset(token)


class AlertsSection(Section):
    enabled: bool = True
    channels: dict[Annotated[str, Field(pattern=NAME_PATTERN)], ChannelSpec] = Field(default_factory=dict)
    # Empty = the shipped defaults (boothguard.collector.alerts.defaults.DEFAULT_RULES).
    rules: list[RuleSpec] = Field(default_factory=list)
    # Also apply the shipped defaults when `rules` is not empty (your rules come first).
    include_default_rules: bool = False
    # Channels of rules that name none (and of the default rules); unset = every declared channel.
    default_channels: list[ChannelRef] | None = None
    # A repeat of an open alert's group notifies at most once per this many seconds.
    throttle_seconds: float = Field(default=300.0, ge=0)
    # Repeats of an acknowledged alert notify too (at the throttle rate); by default they are only counted.
    notify_acked_repeats: bool = False
    # Per-channel queue of pending notifications; when full, new ones are dropped and counted.
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    retry_initial_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=60.0, gt=0)
    # A notification still failing after this many attempts is dropped and counted.
    retry_max_attempts: int = Field(default=10, ge=1)

    @model_validator(mode="wrap")
    @classmethod
    def _with_declared_channels(
        cls, data: Any, handler: ModelWrapValidatorHandler[AlertsSection]
    ) -> AlertsSection:
        channels = data.get("channels") if isinstance(data, dict) else None
        names = frozenset(str(k) for k in channels) if isinstance(channels, dict) else frozenset()
        if isinstance(data, AlertsSection):
            return data
        with _declaring(names):
            return handler(data)
