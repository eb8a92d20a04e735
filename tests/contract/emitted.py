"""Static: the data keys each agent call site can put into an event of a given type, read from the AST
of the agent's own code (boothguard/, without the collector).

A call site is any call whose first argument is the event type as a string literal (`Draft("spool.gap",
…)`, `self._send("clipboard.copy", …)`); its data is the third positional argument or `data=`. Keys are
followed through dict literals, `**spread`, `a | b`, local names (`data = …`, `data |= …`, `data["k"] = …`,
`data.update(…)`) and calls of plain functions defined in the agent (`device_data(…)` → its `return`). What
cannot be followed (a parameter, an attribute) makes the site *open*: its keys are then a lower bound.
Branches are not told apart (a key set under one `if` counts as emitted): the scenario contract tests
(tests/usb, tests/session, tests/lock `test_contract_*`) check what the agent sends at run time.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "boothguard"


@dataclass
class Site:
    path: str
    line: int
    keys: set[str] = field(default_factory=set)
    open: bool = False


@cache
def _modules() -> tuple[tuple[str, ast.Module], ...]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "collector" in path.relative_to(PACKAGE).parts:
            continue
        out.append((str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text(), str(path))))
    return tuple(out)


@cache
def _functions() -> dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]]:
    found: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for _, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.setdefault(node.name, []).append(node)
    return found


def _enclosing(tree: ast.Module) -> dict[ast.AST, ast.AST]:
    """node → the innermost function (or module) it is in."""
    owner: dict[ast.AST, ast.AST] = {}

    def visit(node: ast.AST, scope: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            owner[child] = scope
            visit(child, child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope)

    visit(tree, tree)
    return owner


class _Resolver:
    def __init__(self) -> None:
        self.open = False
        self._seen: set[tuple[int, str]] = set()

    def keys(self, expr: ast.expr | None, scope: ast.AST) -> set[str]:
        if expr is None:
            return set()
        if isinstance(expr, ast.Dict):
            out: set[str] = set()
            for k, v in zip(expr.keys, expr.values, strict=True):
                if k is None:
                    out |= self.keys(v, scope)
                elif isinstance(k, ast.Constant) and isinstance(k.value, str):
                    out.add(k.value)
                else:
                    self.open = True
            return out
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
            return self.keys(expr.left, scope) | self.keys(expr.right, scope)
        if isinstance(expr, ast.Name):
            return self._name(expr.id, scope)
        if isinstance(expr, ast.Call):
            # Only plain function calls are followed: a method name (`g.data()`) could be any class's.
            name = expr.func.id if isinstance(expr.func, ast.Name) else None
            if name == "dict":
                return self.keys(ast.Dict(keys=[None], values=list(expr.args)), scope) | {
                    k.arg for k in expr.keywords if k.arg is not None
                }
            defs = _functions().get(name or "", [])
            if not defs:
                self.open = True
                return set()
            out = set()
            for fn in defs:
                for node in ast.walk(fn):
                    if isinstance(node, ast.Return):
                        out |= self.keys(node.value, fn)
            return out
        self.open = True
        return set()

    def _name(self, name: str, scope: ast.AST) -> set[str]:
        key = (id(scope), name)
        if key in self._seen:
            return set()
        self._seen.add(key)
        out: set[str] = set()
        assigned = False
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == name:
                        out |= self.keys(node.value, scope)
                        assigned = True
                    elif (
                        isinstance(target, ast.Subscript)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == name
                        and isinstance(target.slice, ast.Constant)
                    ):
                        out.add(str(target.slice.value))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if node.target.id == name and node.value is not None:
                    out |= self.keys(node.value, scope)
                    assigned = True
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                if node.target.id == name:
                    out |= self.keys(node.value, scope)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "update"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == name
            ):
                for arg in node.args:
                    out |= self.keys(arg, scope)
        if not assigned:
            self.open = True  # a parameter, or a name from outside the function
        return out


def sites(event_type: str) -> list[Site]:
    """Every call site in the agent that emits `event_type`, with the data keys it can carry."""
    found = []
    for path, tree in _modules():
        owner = _enclosing(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and first.value == event_type):
                continue
            data: ast.expr | None = node.args[2] if len(node.args) > 2 else None
            data = next((k.value for k in node.keywords if k.arg == "data"), data)
            resolver = _Resolver()
            keys = resolver.keys(data, owner[node])
            found.append(Site(path, node.lineno, keys, resolver.open))
    return found
