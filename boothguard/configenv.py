"""BOOTHGUARD_<SECTION>__<KEY> overrides, merged over the TOML the way pydantic-settings merged them.

pydantic-settings (2.x, `env_nested_delimiter="__"`, case-insensitive) did this until it was dropped: it
cost the daemon 1.5 MB resident (CLI, dotenv and cloud sources, its own models) for these few rules, which
tests/unit/test_configenv.py checks against it field by field:
- `BOOTHGUARD_<SECTION>` holds a JSON object; `BOOTHGUARD_<SECTION>__<KEY>[__<KEY>…]` one value, kept as a
  string unless its field is complex (model, list, set, tuple, dict): then it is JSON;
- names are case-insensitive, and so are the section names of the files and of a section's JSON object;
- the environment wins over the files, merging into nested tables.
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from collections.abc import Mapping, Sequence, Set
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from boothguard.configfiles import ENV_PREFIX
from boothguard.errors import ConfigError, Problem

_SEP = "__"


def merge(model: type[BaseModel], values: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The keyword values (the merged files) for `model`'s sections, overridden by the environment."""
    names = {name.lower(): name for name in environ}  # the last spelling wins, as in a lowered dict
    env = {low: environ[name] for low, name in names.items()}
    return _deep_update(_files(model, values), _environment(model, env, names))


def _files(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    unused = dict(values)
    for field in model.model_fields:
        spellings = [key for key in values if key.lower() == field.lower()]
        if spellings:
            out[field] = values[spellings[0]]
            for key in spellings:  # a second spelling of the same section is dropped, not an extra key
                del unused[key]
    return {**out, **unused}


def _environment(model: type[BaseModel], env: Mapping[str, str], names: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        var = (ENV_PREFIX + name).lower()
        value: Any = env.get(var)
        complex_, lenient = _complexity(field.annotation)
        if complex_:
            nested = _explode(var, field, env, names)
            if value is None:
                value = nested or None
            else:
                value = _json(value, lenient, names[var], name)
                if isinstance(value, dict):
                    value = _deep_update(value, nested)
        if value is not None:
            out[name] = _match_fields(field, value) if isinstance(value, dict) else value
    return out


def _explode(var: str, field: FieldInfo, env: Mapping[str, str], names: Mapping[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    prefix = var + _SEP
    is_dict = field.annotation is dict or _subclass(get_origin(field.annotation), dict)
    for name, raw in env.items():
        if not name.startswith(prefix):
            continue
        *keys, last = name[len(prefix) :].split(_SEP)
        node: Any = result
        target: Any = field
        for key in keys:
            target = _next_field(target, key)
            if isinstance(node, dict):
                node = node.setdefault(key, {})
        target = _next_field(target, last)
        value: Any = raw
        if (target is not None or is_dict) and raw:
            if isinstance(target, FieldInfo):
                complex_, lenient = _complexity(target.annotation)
            elif target is not None:  # a bare type: the value type of a dict
                complex_, lenient = _is_complex(target), True
            else:  # a key of a dict field
                complex_, lenient = True, True
            if complex_:
                dotted = ".".join([var[len(ENV_PREFIX) :], *keys, last])
                value = _json(raw, lenient, names[name], dotted)
        if isinstance(node, dict):
            node[last] = value
    return result


def _next_field(field: Any, key: str) -> Any:
    """The field (or bare type) that `key` names inside `field`, None when nothing does."""
    if field is None:
        return None
    annotation: Any = field.annotation if isinstance(field, FieldInfo) else field
    origin = get_origin(annotation)
    if _subclass(origin, dict):
        args = get_args(annotation)
        return args[-1] if args else None
    for arg in get_args(annotation):
        found = _next_field(arg, key)
        if found:
            return found
    if _subclass(annotation, BaseModel):
        for name, sub in annotation.model_fields.items():
            if key in (name.lower(), (ENV_PREFIX + name).lower()):
                return sub
    return None


def _match_fields(field: FieldInfo, value: dict[str, Any]) -> dict[str, Any]:
    """A section's keys matched to its field names case-insensitively (one level, as pydantic-settings)."""
    annotation = _strip(field.annotation)
    if not _subclass(annotation, BaseModel):
        return value
    lowered = {name.lower(): name for name in reversed(annotation.model_fields)}
    return {lowered.get(key.lower(), key): item for key, item in value.items()}


def _json(raw: str, lenient: bool, var: str, key: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        if lenient:
            return raw
        raise ConfigError([Problem(f"environment {var}", None, key, f"not valid JSON: {exc}")]) from None


def _complexity(annotation: Any) -> tuple[bool, bool]:
    """(decode as JSON, keep the string when it is not JSON): the second only for unions."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if _is_complex(annotation):
        return True, False
    if get_origin(annotation) in (Union, UnionType) and any(_is_complex(a) for a in get_args(annotation)):
        return True, True
    return False, False


def _is_complex(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_complex(get_args(annotation)[0])
    return (
        _container(annotation)
        or _container(origin)
        or hasattr(origin, "__pydantic_core_schema__")
        or hasattr(origin, "__get_pydantic_core_schema__")
    )


def _container(tp: Any) -> bool:
    if _subclass(tp, (str, bytes)):
        return False
    kinds = (BaseModel, Mapping, Sequence, Set, tuple, set, frozenset, deque)
    return _subclass(tp, kinds) or (isinstance(tp, type) and dataclasses.is_dataclass(tp))


def _strip(annotation: Any) -> Any:
    """Annotated[X, …] and X | None → X."""
    if get_origin(annotation) is Annotated:
        return _strip(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip(args[0])
    return annotation


def _subclass(tp: Any, kinds: type | tuple[type, ...]) -> bool:
    try:
        return isinstance(tp, type) and issubclass(tp, kinds)
    except TypeError:  # a parametrized generic such as list[int]
        return False


def _deep_update(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out
