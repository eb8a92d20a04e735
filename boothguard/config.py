"""Settings: TOML main file, drop-ins in lexical order, then BOOTHGUARD_<SECTION>__<KEY> environment.

Every problem is reported with file, line and key (`boothguard config check` exits 78), and running as
root, files another user could have written are refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field, PrivateAttr, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from boothguard.agent.settings import AgentSection
from boothguard.config_override import RefusedOverride
from boothguard.configfiles import ENV_PREFIX, ETC, config_files, read_files
from boothguard.errors import ConfigError, Problem
from boothguard.lock.settings import LockSection
from boothguard.session.settings import ClipboardSection, ScreenshotSection
from boothguard.ship.settings import ShipSection
from boothguard.usb.settings import UsbSection

if TYPE_CHECKING:
    # Defined in config_collector so the agent and the CLI never load the collector's section models.
    from boothguard.config_collector import CollectorConfig

__all__ = [
    "ENV_PREFIX",
    "ETC",
    "AgentConfig",
    "CollectorConfig",
    "config_files",
    "load",
    "load_agent",
    "load_collector",
]

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
    # Local values the collector's policy did not let apply (set by `load`, reported by the agent).
    _refused: tuple[RefusedOverride, ...] = PrivateAttr(default=())

    @property
    def refused_overrides(self) -> tuple[RefusedOverride, ...]:
        return self._refused

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


C = TypeVar("C", bound=_Settings)


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
    merged, provenance, problems, guarded_env, refused = read_files(
        main, main_required=main_required, environ=environ, strict_perms=strict_perms
    )
    if problems:
        raise ConfigError(problems)
    token = _ENVIRON.set(guarded_env)
    try:
        cfg = cls(**merged)
        cfg._refused = tuple(refused)
        return cfg
    except SettingsError as exc:  # e.g. BOOTHGUARD_AGENT='{' : not JSON for a section
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError([Problem(f"environment {ENV_PREFIX}*", None, "-", f"{exc}{cause}")]) from None
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
    from boothguard.config_collector import CollectorConfig

    return load(CollectorConfig, path or ETC / "collector.toml", main_required=path is not None, **kw)


def __getattr__(name: str) -> object:
    # `from boothguard.config import CollectorConfig` still works; only then are its sections imported.
    if name == "CollectorConfig":
        from boothguard.config_collector import CollectorConfig

        return CollectorConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
