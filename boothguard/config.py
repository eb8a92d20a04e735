"""Settings: TOML main file, drop-ins in lexical order, then BOOTHGUARD_<SECTION>__<KEY> environment.

Every problem is reported with file, line and key (`boothguard config check` exits 78), and running as
root, files another user could have written are refused.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from boothguard.agent.settings import AgentSection
from boothguard.collector.settings import AlertsSection, CollectorSection
from boothguard.errors import ConfigError, Problem
from boothguard.lock.settings import LockSection
from boothguard.session.settings import ClipboardSection, ScreenshotSection
from boothguard.ship.settings import ShipSection
from boothguard.usb.settings import UsbSection

ENV_PREFIX = "BOOTHGUARD_"
ETC = Path("/etc/boothguard")
KeyPath = tuple[str | int, ...]
# The environment a load reads; passed in (tests, reload) instead of always os.environ.
_ENVIRON: ContextVar[Mapping[str, str]] = ContextVar("boothguard_environ")


class _EnvSource(EnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = _ENVIRON.get(os.environ)
        # Names are matched case-insensitively, as pydantic-settings does by default.
        return {k if self.case_sensitive else k.lower(): v for k, v in env.items()}


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The merged TOML arrives as init kwargs; the environment overrides it.
        return (_EnvSource(settings_cls), init_settings)


class AgentConfig(_Settings):
    agent: AgentSection = Field(default_factory=AgentSection)
    usb: UsbSection = Field(default_factory=UsbSection)
    clipboard: ClipboardSection = Field(default_factory=ClipboardSection)
    screenshot: ScreenshotSection = Field(default_factory=ScreenshotSection)
    lock: LockSection = Field(default_factory=LockSection)
    ship: ShipSection = Field(default_factory=ShipSection)

    @property
    def token_file(self) -> Path:
        return self.ship.token_file or self.agent.state_dir / "host.token"

    @property
    def socket_path(self) -> Path:
        return self.agent.runtime_dir / "agent.sock"


class CollectorConfig(_Settings):
    collector: CollectorSection = Field(default_factory=CollectorSection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)


C = TypeVar("C", bound=_Settings)


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


def _read_into(
    path: Path, merged: dict[str, Any], provenance: _Provenance, strict_perms: bool
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
    # Tables too, so an error about a missing key (a rule without `id`) points at its table.
    for table, table_line in lines.items():
        provenance.places[table] = (str(path), table_line)
    for key in _flatten((), data):
        line = next((lines[key[:n]] for n in range(len(key), 0, -1) if key[:n] in lines), None)
        provenance.places[key] = (str(path), line)
    _merge(merged, data)
    return None


def load(
    cls: type[C],
    main: Path,
    *,
    main_required: bool = False,
    env: Mapping[str, str] | None = None,
    check_permissions: bool | None = None,
) -> C:
    """Load and validate; raise ConfigError listing every problem found."""
    environ = os.environ if env is None else env
    strict_perms = os.geteuid() == 0 if check_permissions is None else check_permissions
    dropin_dir = main.with_suffix(".d")
    problems: list[Problem] = []
    provenance = _Provenance()
    merged: dict[str, Any] = {}
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
        problem = _read_into(path, merged, provenance, strict_perms)
        if problem:
            problems.append(problem)
    for name in environ:
        if name.startswith(ENV_PREFIX) and "__" in name:
            key = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
            provenance.places[key] = (f"environment {name}", None)
    if problems:
        raise ConfigError(problems)
    token = _ENVIRON.set(environ)
    try:
        return cls(**merged)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            where, line = provenance.locate(loc)
            dotted = ".".join(str(p) for p in loc) or "-"
            reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(Problem(where, line, dotted, reason))
        raise ConfigError(problems) from None
    finally:
        _ENVIRON.reset(token)


def load_agent(path: Path | None = None, **kw: Any) -> AgentConfig:
    return load(AgentConfig, path or ETC / "agent.toml", main_required=path is not None, **kw)


def load_collector(path: Path | None = None, **kw: Any) -> CollectorConfig:
    return load(CollectorConfig, path or ETC / "collector.toml", main_required=path is not None, **kw)
