"""The agent's side of central policy: validate again, then write `agent.d/50-collector.toml` atomically.

Ordering: drop-ins load in lexical order, so files named below 50 are overridden by the policy; files named
above it (e.g. `90-local.toml`) override it only for the keys its `local_override` lists, a top-level key
of the drop-in that `boothguard.config_override` reads. A rejected policy leaves the previous drop-in as is.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from boothguard.config_override import OVERRIDE_KEY, POLICY_DROPIN
from boothguard.policy import PolicyProblem, policy_hash, problems

DROPIN_NAME = POLICY_DROPIN


class PolicyRejected(Exception):
    def __init__(self, found: list[PolicyProblem]) -> None:
        super().__init__("; ".join(f"{p.key}: {p.reason}" for p in found))
        self.problems = found


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic-string escapes for everything json.dumps emits.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:

    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def render(body: dict[str, Any], *, version: int, digest: str) -> str:
    lines = [f"# Managed by the boothguard collector: policy v{version} sha256 {digest}. Do not edit.", ""]
    if OVERRIDE_KEY in body:  # TOML: top-level keys come before the first table
        lines += [f"{OVERRIDE_KEY} = {_toml_value(body[OVERRIDE_KEY])}", ""]
    for section, values in body.items():
        if section == OVERRIDE_KEY:
            continue
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def write(dropin_dir: Path, body: dict[str, Any], *, version: int) -> str:
    """Validate and write the drop-in; returns the policy hash. Raises PolicyRejected, writing nothing."""
    found = problems(body)
    if found:
        raise PolicyRejected(found)
    digest = policy_hash(body)
    dropin_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dropin_dir, prefix=".50-collector.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render(body, version=version, digest=digest))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dropin_dir / DROPIN_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(dropin_dir, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return digest
