"""`[collector.retention]`: how long each class of event is kept whole before it becomes a chain skeleton."""

from __future__ import annotations

import fnmatch
import hashlib
import re

from pydantic import Field, field_validator, model_validator

from boothguard.section import Section

DAY = 86400.0
# Security events: USB, clipboard, capture, lock and away, chain (spool), session watcher; agent.started too,
# since it records the USB mode a booth ran in. Anything else that is not `info` is kept as long.
SECURITY_TYPES = (
    "usb.*",
    "clipboard.*",
    "capture.*",
    "screenshot.*",
    "screen.*",
    "lock.*",
    "away.*",
    "spool.*",
    "session.*",
    "watcher.*",
    "agent.started",
    "agent.config_rejected",
)
# A spool.gap's data declares which seqs are lost on purpose: the chain check needs it forever.
KEEP_WHOLE = frozenset({"spool.gap"})
_PATTERN = re.compile(r"^[a-z0-9_.*?\[\]!-]{1,128}$")

Klass = str  # "security" | "housekeeping"
CLASSES: tuple[Klass, ...] = ("housekeeping", "security")


class RetentionSection(Section):
    enabled: bool = True
    # Whole events of each class are kept this many days after the collector received them (its own clock,
    # not the booth's), then compacted to skeletons.
    security_days: float = Field(default=3 * 365, gt=0)
    housekeeping_days: float = Field(default=7, gt=0)
    # fnmatch patterns of the security class; `info` events matching none of them are housekeeping.
    security_types: tuple[str, ...] = SECURITY_TYPES
    # Rows examined per transaction, transactions per run, seconds between runs.
    batch_size: int = Field(default=1000, ge=10, le=20000)
    max_batches_per_run: int = Field(default=200, ge=1, le=100000)
    interval_seconds: float = Field(default=600, ge=1)

    @field_validator("security_types")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not _PATTERN.match(pattern):
                raise ValueError(f"{pattern!r} is not an event type pattern (a-z 0-9 _ . and * ? [ ] !)")
        return value

    @model_validator(mode="after")
    def _order(self) -> RetentionSection:
        if self.security_days < self.housekeeping_days:
            raise ValueError(
                f"security_days ({self.security_days:g}) is shorter than housekeeping_days "
                f"({self.housekeeping_days:g}): security events would go first"
            )
        return self

    def days(self, klass: Klass) -> float:
        return self.security_days if klass == "security" else self.housekeeping_days

    def klass(self, event_type: str, severity: str) -> Klass | None:
        """The class of an event, or None for one kept whole forever."""
        if event_type in KEEP_WHOLE:
            return None
        if severity != "info" or any(fnmatch.fnmatchcase(event_type, p) for p in self.security_types):
            return "security"
        return "housekeeping"

    def fingerprint(self) -> str:
        """Changes when class membership does: a class's cursor then starts over."""
        return hashlib.sha256("\n".join(self.security_types).encode()).hexdigest()[:32]
