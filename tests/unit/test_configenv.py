"""configenv reads the environment exactly as the pydantic-settings source it replaced, checked against it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError, create_model

from boothguard.config import AgentConfig, CollectorConfig
from boothguard.configenv import merge
from boothguard.configfiles import ENV_PREFIX
from boothguard.errors import ConfigError

ps = pytest.importorskip("pydantic_settings")


def reference(model: type[BaseModel], environ: Mapping[str, str]) -> type[BaseModel]:
    """The settings class boothguard.config had: TOML as init kwargs, overridden by the environment."""

    class Env(ps.EnvSettingsSource):  # type: ignore[misc,name-defined]
        def _load_env_vars(self) -> Mapping[str, str | None]:
            return {k.lower(): v for k, v in environ.items()}

    class Base(ps.BaseSettings):  # type: ignore[misc,name-defined]
        model_config = ps.SettingsConfigDict(
            env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
        )

        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, **rest: Any) -> Any:
            return (Env(settings_cls), init_settings)

    fields: Any = {name: (f.annotation, f) for name, f in model.model_fields.items()}
    return create_model("Reference", __base__=Base, **fields)  # type: ignore[no-any-return]


def outcome(build: Any) -> tuple[str, Any]:
    try:
        return "ok", build().model_dump(mode="json")
    except ValidationError as exc:
        return "invalid", [(e["loc"], e["type"]) for e in exc.errors()]
    except (ConfigError, ps.SettingsError):
        return "bad json", None


def check(model: type[BaseModel], values: dict[str, Any], environ: dict[str, str]) -> None:
    ref = reference(model, environ)
    expected = outcome(lambda: ref(**values))
    got = outcome(lambda: model.model_validate(merge(model, values, environ)))
    assert got == expected, (values, environ)


def samples(default: Any) -> list[str]:
    plain = ["", "x", "5", "0.5", "true", "null", "[1]", '{"a": 1}', "None"]
    return [*plain, json.dumps(default)] if default is not None else plain


@pytest.mark.parametrize("model", [AgentConfig, CollectorConfig])
def test_every_field_from_the_environment_as_pydantic_settings_read_it(model: type[BaseModel]) -> None:
    dumped = model().model_dump(mode="json")
    for section, field in model.model_fields.items():
        assert isinstance(field.annotation, type)
        assert issubclass(field.annotation, BaseModel)
        for key, sub in field.annotation.model_fields.items():
            assert sub.validation_alias is None  # configenv does not do aliases
            for value in samples(dumped[section][key]):
                check(model, {}, {f"{ENV_PREFIX}{section}__{key}".upper(): value})
                check(model, {section: {key: dumped[section][key]}}, {f"boothguard_{section}__{key}": value})


@pytest.mark.parametrize(
    ("values", "environ"),
    [
        ({}, {}),
        ({"USB": {"mode": "audit"}}, {}),
        ({"usb": {"mode": "audit"}, "Usb": {"mode": "off"}}, {}),
        ({"nosuch": {}}, {}),
        ({"usb": {"mode": "audit", "per_interface": False}}, {"BOOTHGUARD_USB__MODE": "off"}),
        ({}, {"BOOTHGUARD_USB": '{"MODE": "off", "Per_Interface": false}'}),
        ({}, {"BOOTHGUARD_USB": '{"mode": "off"}', "BOOTHGUARD_USB__MODE": "audit"}),
        ({"usb": {"per_interface": False}}, {"BOOTHGUARD_USB": '{"mode": "off"}'}),
        ({}, {"BOOTHGUARD_USB": "1"}),
        ({}, {"BOOTHGUARD_USB": "{"}),
        ({}, {"BOOTHGUARD_USB": ""}),
        ({}, {"BOOTHGUARD_USB__RULES": "{"}),
        ({}, {"BOOTHGUARD_USB__RULES": '[{"id": "x"}]'}),
        ({}, {"BOOTHGUARD_USB__RULES__ID": "x"}),
        ({}, {"BOOTHGUARD_USB__RULES": "[]", "BOOTHGUARD_USB__RULES__ID": "x"}),
        ({}, {"BOOTHGUARD_USB__MODE__DEEPER": "x"}),
        ({}, {"BOOTHGUARD_USB__BOOTHGUARD_RULES": "[]"}),
        ({}, {"BOOTHGUARD_NOSUCH__KEY": "1", "BOOTHGUARD_NOSUCH": "1", "OTHER": "1"}),
        ({}, {"BOOTHGUARD_LOCK__FALLBACK_COMMANDS": '[["xdg-screensaver", "lock"]]'}),
        ({}, {"BOOTHGUARD_SHIP__TOKEN_FILE": "/t", "boothguard_ship__token_FILE": "/u"}),
        ({}, {"BOOTHGUARD_LOCK__HTTP_TOKEN_FILE": ""}),
        ({}, {"BOOTHGUARD_AGENT": "[]"}),
    ],
)
def test_merging_files_and_environment_as_pydantic_settings_did(
    values: dict[str, Any], environ: dict[str, str]
) -> None:
    check(AgentConfig, values, environ)


def test_bad_json_is_a_located_config_problem() -> None:
    with pytest.raises(ConfigError) as info:
        merge(AgentConfig, {}, {"BOOTHGUARD_USB__RULES": "[oops"})
    [problem] = info.value.problems
    assert str(problem).startswith("environment BOOTHGUARD_USB__RULES: usb.rules: not valid JSON")
