"""Reading config files without pydantic: TOML main file, drop-ins in lexical order, provenance, permissions.

`boothguard.config` validates what this reads; the session watcher, which needs only the agent's socket,
reads it here (`agent_socket_path`) without loading pydantic at all.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from boothguard.config_override import (
    OVERRIDE_KEY,
    ManagedPolicy,
    RefusedOverride,
    guard_environ,
    is_policy_file,
    strip_refused,
    take_policy,
)
from boothguard.errors import ConfigError, Problem

ENV_PREFIX = "BOOTHGUARD_"
# Every config section of the agent and the collector (both may share one environment, e.g. a test box);
# tests/unit/test_config.py checks this against the models. A BOOTHGUARD_ variable naming any other
# section is a typo, and a typo that silently does nothing is a control that silently does not apply.
SECTIONS = frozenset({"agent", "usb", "clipboard", "screenshot", "lock", "ship", "collector", "alerts"})
# BOOTHGUARD_ names the project uses that are not configuration.
NOT_CONFIG = frozenset({"BOOTHGUARD_STRONG_IDS", "BOOTHGUARD_TEST_CACHE"})


def env_problems(environ: Mapping[str, str]) -> list[Problem]:
    """BOOTHGUARD_* variables that are not BOOTHGUARD_<SECTION>[__<KEY>] for a known section."""
    problems: list[Problem] = []
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NOT_CONFIG:
            continue
        section, _, key = upper[len(ENV_PREFIX) :].partition("__")
        if section.lower() not in SECTIONS:
            reason = f"unknown section {section.lower()!r} (sections: {', '.join(sorted(SECTIONS))})"
            if "_" in section and section.split("_")[0].lower() in SECTIONS:
                reason += "; section and key are separated by two underscores"
            problems.append(Problem(f"environment {name}", None, "-", reason))
        elif "__" in upper[len(ENV_PREFIX) :] and not key.strip("_"):
            problems.append(Problem(f"environment {name}", None, "-", "empty key after '__'"))
    return problems


ETC = Path("/etc/boothguard")
# AgentSection.runtime_dir's default (a test keeps them equal); the socket lives in it.
DEFAULT_RUNTIME_DIR = Path("/run/boothguard")
KeyPath = tuple[str | int, ...]


class _Provenance:
    """Where each key was set: (file, line), or the environment variable's name."""

    def __init__(self) -> None:
        self.places: dict[KeyPath, tuple[str, int | None]] = {}

    def locate(self, loc: KeyPath) -> tuple[str, int | None]:
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.places:
                return self.places[loc[:n]]
        return ("<defaults>", None)


_TABLE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([^\[\]]+?)\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\-\"' ]+?)\s*=")


def _split_key(text: str) -> list[str]:
    return [part.strip().strip("\"'") for part in text.split(".")]


def _set_prefixes(lines: dict[KeyPath, int], path: KeyPath, number: int) -> None:
    # `[[usb.rules]]` also opens `usb`: an error about the whole section points here if nothing else does.
    for n in range(1, len(path) + 1):
        lines.setdefault(path[:n], number)


def _key_lines(text: str) -> dict[KeyPath, int]:
    """Line numbers of tables and keys; tomllib does not keep them."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    arrays: dict[KeyPath, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if m := _ARRAY_TABLE.match(raw):
            base = tuple(_split_key(m.group(1)))
            index = arrays.get(base, -1) + 1
            arrays[base] = index
            table = (*base, index)
            lines.setdefault(table, number)
            _set_prefixes(lines, base, number)
        elif m := _TABLE.match(raw):
            table = tuple(_split_key(m.group(1)))
            _set_prefixes(lines, table, number)
        elif m := _KEY.match(raw):
            lines.setdefault((*table, *_split_key(m.group(1))), number)
    return lines


def _flatten(prefix: KeyPath, value: Any) -> list[KeyPath]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _flatten((*prefix, k), v)] or [prefix]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [p for i, v in enumerate(value) for p in _flatten((*prefix, i), v)]
    return [prefix]


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _permission_problem(path: Path) -> str | None:
    st = path.stat()
    if st.st_uid != 0:
        return f"owned by uid {st.st_uid}, not root: refusing a file another user could have written"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"mode {stat.S_IMODE(st.st_mode):04o} is group- or world-writable: refusing it"
    return None


def config_files(main: Path, dropin_dir: Path) -> list[Path]:
    files = [main] if _exists(main) else []
    if _exists(dropin_dir) and dropin_dir.is_dir():
        files += sorted(p for p in dropin_dir.iterdir() if p.suffix == ".toml")
    return files


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except FileNotFoundError:
        return False
    except OSError:
        return False
    return True


class _Guard:
    """The managed policy drop-in once read, and the later local values it refused."""

    def __init__(self, dropin_dir: Path) -> None:
        self.dropin_dir = dropin_dir
        self.policy: ManagedPolicy | None = None
        self.refused: list[RefusedOverride] = []

    def check(self, path: Path, text: str, data: dict[str, Any], lines: dict[KeyPath, int]) -> str | None:
        """Adjust one file's data before it is merged; a reason when the file must be refused."""
        if is_policy_file(path, self.dropin_dir):
            found = take_policy(text, data)
            if isinstance(found, str):
                return found
            self.policy = found
            return None
        if OVERRIDE_KEY in data:
            return f"{OVERRIDE_KEY} is set by the collector's policy only, not by a local file"
        if self.policy is not None:
            self.refused += strip_refused(data, self.policy, str(path), lines)
        return None


def _read_into(
    path: Path, merged: dict[str, Any], provenance: _Provenance, strict_perms: bool, guard: _Guard
) -> Problem | None:
    try:
        if strict_perms and (why := _permission_problem(path)):
            return Problem(str(path), None, "-", why)
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        return Problem(str(path), int(m.group(1)) if m else None, "-", f"TOML syntax: {exc}")
    except (OSError, UnicodeDecodeError) as exc:
        return Problem(str(path), None, "-", f"cannot read: {exc}")
    lines = _key_lines(text)
    if why := guard.check(path, text, data, lines):
        return Problem(str(path), lines.get((OVERRIDE_KEY,)), OVERRIDE_KEY, why)
    # Tables too, so an error about a missing key (a rule without `id`) points at its table.
    for table, table_line in lines.items():
        provenance.places[table] = (str(path), table_line)
    for key in _flatten((), data):
        line = next((lines[key[:n]] for n in range(len(key), 0, -1) if key[:n] in lines), None)
        provenance.places[key] = (str(path), line)
    _merge(merged, data)
    return None


class Read(NamedTuple):
    merged: dict[str, Any]
    provenance: _Provenance
    problems: list[Problem]
    # The environment to validate: without the values the collector's policy refuses.
    environ: dict[str, str]
    refused: list[RefusedOverride]


def read_files(main: Path, *, main_required: bool, environ: Mapping[str, str], strict_perms: bool) -> Read:
    """The merged TOML of `main` and its drop-ins, where each key came from, the problems met, and the local
    values the collector's policy refused (`boothguard.config_override`)."""
    dropin_dir = main.with_suffix(".d")
    problems: list[Problem] = []
    provenance = _Provenance()
    merged: dict[str, Any] = {}
    guard = _Guard(dropin_dir)
    try:
        main.stat()
    except FileNotFoundError:
        if main_required:
            problems.append(Problem(str(main), None, "-", "file not found"))
    except OSError as exc:
        problems.append(Problem(str(main), None, "-", f"cannot read: {exc.strerror}"))
    if strict_perms and dropin_dir.is_dir() and (why := _permission_problem(dropin_dir)):
        problems.append(Problem(str(dropin_dir), None, "-", why))
    for path in config_files(main, dropin_dir):
        problem = _read_into(path, merged, provenance, strict_perms, guard)
        if problem:
            problems.append(problem)
    problems += env_problems(environ)
    env, refused_env = guard_environ(environ, guard.policy)
    for name in env:
        if name.startswith(ENV_PREFIX) and "__" in name:
            key = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
            provenance.places[key] = (f"environment {name}", None)
    return Read(merged, provenance, problems, env, guard.refused + refused_env)


class Unsure(Exception):
    """The light reader met something only the full validation can judge (and report precisely)."""


def agent_socket_path(path: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """`AgentConfig.socket_path` without pydantic: `agent.runtime_dir` from the files, then the environment.

    The environment is read as pydantic-settings reads it for `AgentConfig`: names case-insensitive,
    `BOOTHGUARD_AGENT` as a JSON object, `BOOTHGUARD_AGENT__RUNTIME_DIR` over it, both over the files.
    Other keys are not validated here (unknown BOOTHGUARD_ sections are): the agent and
    `boothguard config check` do that. Raises
    ConfigError (file missing when given, unreadable, TOML syntax) and Unsure (a value only the full
    validation can judge).
    """
    environ = os.environ if env is None else env
    main = path or ETC / "agent.toml"
    read = read_files(main, main_required=path is not None, environ=environ, strict_perms=False)
    if read.problems:
        raise ConfigError(read.problems)
    return runtime_dir(read.merged, read.environ) / "agent.sock"


def runtime_dir(merged: Mapping[str, Any], environ: Mapping[str, str]) -> Path:
    """`agent.runtime_dir` from merged TOML and the environment (Unsure when not a plain path)."""
    agent = merged.get("agent", {})
    if not isinstance(agent, dict):
        raise Unsure("agent")
    value = agent.get("runtime_dir", DEFAULT_RUNTIME_DIR)
    lowered = {k.lower(): v for k, v in environ.items()}
    section = lowered.get(f"{ENV_PREFIX}agent".lower())
    if section is not None:
        try:
            parsed = json.loads(section)
        except ValueError:
            raise Unsure("BOOTHGUARD_AGENT") from None
        if not isinstance(parsed, dict):
            raise Unsure("BOOTHGUARD_AGENT")
        value = parsed.get("runtime_dir", value)
    nested = [v for k, v in lowered.items() if k == f"{ENV_PREFIX}agent__runtime_dir".lower()]
    if nested:
        value = nested[-1]
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value:
        raise Unsure("agent.runtime_dir")
    return Path(value)
