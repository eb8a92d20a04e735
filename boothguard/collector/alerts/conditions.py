"""Rule conditions: a small comparison language on observation fields (no eval).

A condition value is either a TOML scalar (bool, integer, float: equality) or a string:
  ">N" ">=N" "<N" "<=N"   numeric comparison (a data object of numbers compares as its sum, a list as
                           its length)
  "==X" or plain "X"       equality (numeric when both sides are numbers)
  "!=X"                    inequality
  "~GLOB"                  fnmatch on the text value
A condition on a field the observation does not have never holds.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from boothguard.collector.alerts.model import Observation
from boothguard.collector.alerts.template import MISSING, field_value

_TYPE_PATTERN_RE = re.compile(r"^!?[a-z0-9_.*?\[\]\-]+$")
_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def parse_type_pattern(pattern: str) -> str:
    if not _TYPE_PATTERN_RE.match(pattern) or pattern in {"!", ""}:
        raise ValueError(f"bad type pattern {pattern!r}: lower-case dotted names with * ? [] wildcards")
    return pattern


def type_matches(event_type: str, patterns: list[str]) -> bool:
    included = any(fnmatch.fnmatchcase(event_type, p) for p in patterns if not p.startswith("!"))
    excluded = any(fnmatch.fnmatchcase(event_type, p[1:]) for p in patterns if p.startswith("!"))
    return included and not excluded


def _number(value: Any) -> float | None:
    number: float | None = None
    if isinstance(value, bool | int | float):
        number = float(value)
    elif isinstance(value, dict):
        parts = [_number(v) for v in value.values()]
        number = math.fsum(p for p in parts if p is not None)
    elif isinstance(value, list):
        number = float(len(value))
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    return number if number is not None and math.isfinite(number) else None


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # ">", ">=", "<", "<=", "==", "!=", "~"
    operand: str | float | bool

    def holds(self, obs: Observation) -> bool:
        value = field_value(obs, self.field)
        if value is MISSING:
            return False
        if self.op in _NUMERIC_OPS:
            number = _number(value)
            return number is not None and _NUMERIC_OPS[self.op](number, float(self.operand))
        if self.op == "~":
            return isinstance(value, str) and fnmatch.fnmatchcase(value, str(self.operand))
        equal = _equal(value, self.operand)
        return equal if self.op == "==" else not equal


def _equal(value: Any, operand: str | float | bool) -> bool:
    if isinstance(operand, bool) or isinstance(value, bool):
        return value is operand or (isinstance(operand, str) and str(value).lower() == operand.lower())
    left, right = _number(value), _number(operand)
    if left is not None and right is not None and not isinstance(value, dict | list):
        return left == right
    return isinstance(value, str) and value == str(operand)


def _split(value: str | bool | float) -> tuple[str, str | float | bool]:
    if not isinstance(value, str):
        return "==", value
    for op in (">=", "<=", "==", "!=", ">", "<", "~"):
        if value.startswith(op):
            rest = value[len(op) :].strip()
            if op in _NUMERIC_OPS:
                number = _number(rest)
                if number is None or rest == "":
                    raise ValueError(f"{value!r}: {op} needs a number")
                return op, number
            return op, rest
    return "==", value


def parse_condition(value: str | bool | float) -> str | bool | float:
    """Validate a condition value (raises ValueError); returns it unchanged."""
    _split(value)
    return value


def compile_condition(field: str, value: str | bool | float) -> Condition:
    op, operand = _split(value)
    return Condition(field, op, operand)
