"""Local files may override the collector's policy only where the policy allows (`local_override`).

Drop-ins load in name order, so `agent.d/90-local.toml` comes after the managed `agent.d/50-collector.toml`.
Without this guard it would silently undo security's policy on that booth. Once the managed drop-in is in
place, a later drop-in's (or the environment's) value for a key the policy sets is dropped unless the
policy's `local_override` lists the key or its section; each drop is returned so the agent can report it.
Keys the policy does not set stay local, and a booth with no policy drop-in is unaffected.

No pydantic here: `configfiles` (which the session watcher loads) calls it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLICY_DROPIN = "50-collector.toml"
OVERRIDE_KEY = "local_override"
# The first line of the managed drop-in (written by boothguard.policy.dropin).
POLICY_HEADER = re.compile(r"^# Managed by the boothguard collector: policy v(\d+) sha256 ([0-9a-f]{64})\.")
_ENV_PREFIX = "boothguard_"


@dataclass(frozen=True)
class ManagedPolicy:
    """What the managed drop-in sets and which of those keys local files may still override."""

    version: int | None
    hash: str | None
    sets: frozenset[tuple[str, str]]
    allowed: frozenset[str]  # "section.key" or a whole "section"

    def refuses(self, section: str, key: str) -> bool:
        return (section, key) in self.sets and not {f"{section}.{key}", section} & self.allowed


@dataclass(frozen=True)
class RefusedOverride:
    """A local value the policy does not let a local file change: ignored, and reported."""

    source: str  # the file, or "environment BOOTHGUARD_…"
    line: int | None
    key: str  # "usb.mode"
    policy_version: int | None
    policy_hash: str | None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return (
            f"{where}: {self.key}: local override refused: the collector's policy "
            f"v{self.policy_version} sets it and does not list it in {OVERRIDE_KEY}"
        )


def override_data(refused: RefusedOverride) -> dict[str, Any]:
    """The data of an `agent.config_override_refused` event (a function: the contract test follows it)."""
    return {
        "file": refused.source,
        "line": refused.line,
        "key": refused.key,
        "policy_version": refused.policy_version,
        "policy_hash": refused.policy_hash,
    }


def is_policy_file(path: Path, dropin_dir: Path) -> bool:
    return path.name == POLICY_DROPIN and path.parent == dropin_dir


def take_policy(text: str, data: dict[str, Any]) -> ManagedPolicy | str:
    """Pop `local_override` from the managed drop-in's data; the policy it describes, or why it is bad."""
    allowed = data.pop(OVERRIDE_KEY, [])
    if not isinstance(allowed, list) or not all(isinstance(k, str) for k in allowed):
        return f'{OVERRIDE_KEY} must be a list of keys ("usb.rules") or sections ("lock")'
    m = POLICY_HEADER.match(text.split("\n", 1)[0])
    sets = frozenset(
        (section, key) for section, table in data.items() if isinstance(table, dict) for key in table
    )
    return ManagedPolicy(
        version=int(m.group(1)) if m else None,
        hash=m.group(2) if m else None,
        sets=sets,
        allowed=frozenset(allowed),
    )


def strip_refused(
    data: dict[str, Any], policy: ManagedPolicy, source: str, lines: Mapping[tuple[str | int, ...], int]
) -> list[RefusedOverride]:
    """Remove from a later file's data every key the policy refuses to a local file (in place)."""
    refused = []
    for section, table in data.items():
        if not isinstance(table, dict):
            continue  # not a table: the config's validation reports it
        for key in [k for k in table if policy.refuses(section, k)]:
            del table[key]
            line = lines.get((section, key), lines.get((section,)))
            refused.append(RefusedOverride(source, line, f"{section}.{key}", policy.version, policy.hash))
    return refused


def guard_environ(
    environ: Mapping[str, str], policy: ManagedPolicy | None
) -> tuple[dict[str, str], list[RefusedOverride]]:
    """The environment without the BOOTHGUARD_ values the policy refuses (names are case-insensitive)."""
    out = dict(environ)
    if policy is None:
        return out, []
    refused = []
    for name, value in environ.items():
        lower = name.lower()
        if not lower.startswith(_ENV_PREFIX):
            continue
        section, _, rest = lower[len(_ENV_PREFIX) :].partition("__")
        if rest:
            key = rest.split("__")[0]
            if policy.refuses(section, key):
                del out[name]
                refused.append(_env_refusal(name, section, key, policy))
            continue
        # BOOTHGUARD_USB='{"mode": "audit"}': the whole section as JSON; drop only the refused keys.
        try:
            table = json.loads(value)
        except ValueError:
            continue  # not JSON: the config's validation reports it
        if not isinstance(table, dict):
            continue
        drop = [k for k in table if isinstance(k, str) and policy.refuses(section, k.lower())]
        if drop:
            out[name] = json.dumps({k: v for k, v in table.items() if k not in drop})
            refused += [_env_refusal(name, section, k.lower(), policy) for k in drop]
    return out, refused


def _env_refusal(name: str, section: str, key: str, policy: ManagedPolicy) -> RefusedOverride:
    return RefusedOverride(f"environment {name}", None, f"{section}.{key}", policy.version, policy.hash)
