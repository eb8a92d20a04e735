"""Central policy: the agent config sections a collector group may set, validated by the agent's own models.

The same code runs on the collector (before a policy can be published) and on the agent (before the
drop-in is written), so both refuse the same documents with the same key and reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from boothguard.config_override import OVERRIDE_KEY
from boothguard.lock.settings import LockSection
from boothguard.session.settings import ClipboardSection, ScreenshotSection
from boothguard.usb.settings import UsbSection

# Only these sections may come from the collector: [agent] and [ship] (paths, the collector URL, the
# token) stay local, so a policy can never redirect a booth to another collector.
SECTIONS = ("usb", "clipboard", "screenshot", "lock")
# Keys that describe the booth's own machine, not policy: only local files set them.
LOCAL_ONLY = {("usb", "sysfs_root"), ("usb", "uevent_source")}
MAX_OVERRIDES = 64


class PolicyDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")
    usb: UsbSection = Field(default_factory=UsbSection)
    clipboard: ClipboardSection = Field(default_factory=ClipboardSection)
    screenshot: ScreenshotSection = Field(default_factory=ScreenshotSection)
    lock: LockSection = Field(default_factory=LockSection)
    # Keys ("usb.rules") or whole sections ("lock") a booth's later local drop-ins may still override;
    # empty (the default): none, once the policy is applied.
    local_override: list[str] = Field(default_factory=list, max_length=MAX_OVERRIDES)


@dataclass(frozen=True)
class PolicyProblem:
    key: str
    reason: str
    # What kind of problem, for a translated message: local_only, not_object, section, unknown_key,
    # or pydantic's error type (the reason then says it in English).
    code: str = "invalid"
    subject: str = ""  # what the message is about when the key alone does not say (a local_override entry)

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "reason": self.reason}


def problems(body: object) -> list[PolicyProblem]:
    """Every problem in a policy body (a dict of sections); empty when it is valid."""
    if not isinstance(body, dict):
        return [PolicyProblem("-", "policy must be an object of sections", "not_object")]
    local = [
        PolicyProblem(f"{sec}.{key}", "set by the booth's local config only, not by a policy", "local_only")
        for sec, key in sorted(LOCAL_ONLY)
        if isinstance(body.get(sec), dict) and key in body[sec]
    ]
    if local:
        return local
    try:
        PolicyDoc.model_validate(body)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "-"
            reason, code = (
                ("unknown key", "unknown_key")
                if err["type"] == "extra_forbidden"
                else (err["msg"], "invalid")
            )
            if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                reason, code = (
                    f"section not allowed in a policy (allowed: {', '.join(SECTIONS)}, {OVERRIDE_KEY})",
                    "section",
                )
            out.append(PolicyProblem(key, reason, code))
        return out
    return override_problems(body.get(OVERRIDE_KEY) or [])


def override_problems(entries: list[str]) -> list[PolicyProblem]:
    """Each `local_override` entry must name a section a policy sets, or one of its keys."""
    out = []
    for i, entry in enumerate(entries):
        section, _, key = entry.partition(".")
        where = f"{OVERRIDE_KEY}.{i}"
        model = _MODELS.get(section)
        known = model is not None and (entry == section or key in model.model_fields)
        if (section, key) in LOCAL_ONLY:
            why = f"{entry!r} is set by the booth's local config only: it needs no {OVERRIDE_KEY} entry"
            out.append(PolicyProblem(where, why, "override_local_only", entry))
        elif not known:
            why = (
                f"{entry!r} is not a key a policy can set: give a section ({', '.join(SECTIONS)})"
                ' or one of its keys, like "usb.rules"'
            )
            out.append(PolicyProblem(where, why, "override_unknown", entry))
    return out


_MODELS: dict[str, type[BaseModel]] = {
    "usb": UsbSection,
    "clipboard": ClipboardSection,
    "screenshot": ScreenshotSection,
    "lock": LockSection,
}


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes hashed on both sides: sorted keys, no whitespace, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def policy_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()
