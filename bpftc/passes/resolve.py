"""Resolve: infer the type of every expression and of every map's keys and value.

Consumes an `ast.Program` (after desugar and probes); produces a `Resolution`: a `TypeMap` keyed by
node identity and a `MapInfo` per map. Reports nothing: whatever cannot be typed gets NONE_T, and
passes/check.py reports it with its span.

Type rules follow bpftrace 0.27 (as its messages show them): an integer literal, and an expression
of literals only, is the smallest signed type holding its value ('int8' for 1 + 2); other
arithmetic is 64-bit, signed for '-' or when a signed non-literal takes part, unsigned otherwise;
comparisons and logic give 'bool'. A map's value type is that of its first assignment in source
order; its key types those of its first access with keys (strings widen to the longest seen).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from common.types import (
    BOOL,
    BOOL_T,
    COUNT_T,
    HIST_T,
    INT,
    INT64,
    NONE,
    NONE_T,
    STRING,
    UINT64,
    Type,
    string_type,
)

from bpftc import ast
from bpftc.builtins import BUILTIN_VARIABLES

TypeMap = dict[ast.Node, Type]

COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
LOGICAL = {"&&", "||"}

_FOLDABLE = {"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"}
_CALL_TYPES = {"count": COUNT_T, "hist": HIST_T}


@dataclass
class MapInfo:
    name: str
    keyed: bool  # first access had keys
    key: tuple[Type, ...] | None = None  # None until accessed with keys
    value: Type | None = None  # None until assigned
    first_access: ast.Map | None = None


@dataclass
class Resolution:
    types: TypeMap = field(default_factory=dict)
    maps: dict[str, MapInfo] = field(default_factory=dict)


def resolve(program: ast.Program) -> Resolution:
    """Walk until map types stop changing: a map may be read above its first assignment."""
    resolution = Resolution()
    for _ in range(len(_map_names(program)) + 2):
        before = {name: (info.key, info.value) for name, info in resolution.maps.items()}
        _Resolver(resolution).visit(program)
        if before == {name: (info.key, info.value) for name, info in resolution.maps.items()}:
            break
    # A map that is read but never assigned reads as 0, like an int64 map without elements.
    unassigned = [info for info in resolution.maps.values() if info.value is None]
    for info in unassigned:
        info.value = INT64
    if unassigned:
        _Resolver(resolution).visit(program)
    return resolution


def constant_value(node: ast.Node) -> int | None:
    """The value of an integer expression made of literals only, computed as bpftrace would."""
    if isinstance(node, ast.Integer):
        return node.value
    if isinstance(node, ast.Unop) and node.op in ("-", "~"):
        operand = constant_value(node.operand)
        if operand is None:
            return None
        return -operand if node.op == "-" else ~operand
    if isinstance(node, ast.Binop) and node.op in _FOLDABLE:
        left, right = constant_value(node.left), constant_value(node.right)
        if left is None or right is None or (node.op in "/%" and right == 0):
            return None
        return _fold(node.op, left, right)
    return None


def literal_type(value: int) -> Type:
    for size in (1, 2, 4, 8):
        if -(1 << (size * 8 - 1)) <= value < 1 << (size * 8 - 1):
            return Type(INT, size, True)
    return UINT64


def _fold(op: str, left: int, right: int) -> int:
    if op == "/":
        return int(left / right)  # C truncates toward zero
    if op == "%":
        return left - int(left / right) * right
    if op in ("<<", ">>"):
        return (left << right if op == "<<" else left >> right) if 0 <= right < 64 else 0
    results = {"+": left + right, "-": left - right, "*": left * right}
    results.update({"&": left & right, "|": left | right, "^": left ^ right})
    return results[op]


def _map_names(program: ast.Program) -> set[str]:
    names = set()

    def collect(node: ast.Node) -> None:
        if isinstance(node, ast.Map):
            names.add(node.name)
        for child in ast.children(node):
            collect(child)

    collect(program)
    return names


class _Resolver(ast.Visitor):
    def __init__(self, resolution: Resolution) -> None:
        self.types = resolution.types
        self.maps = resolution.maps

    def typed(self, node: ast.Node, type_: Type) -> Type:
        self.types[node] = type_
        return type_

    # Statements

    def visit_Probe(self, node: ast.Probe) -> None:
        if node.predicate is not None:
            self.visit(node.predicate)
        for statement in node.body:
            self.visit(statement)

    def visit_AssignMap(self, node: ast.AssignMap) -> None:
        value = self.visit(node.value)
        self.visit(node.map)
        info = self.maps[node.map.name]
        if info.value is None:
            if value.kind != NONE:  # not known yet: a later walk may know it
                info.value = _stored(value)
        elif info.value.kind == STRING and value.kind == STRING:
            info.value = string_type(max(info.value.size, value.size))

    def visit_ExprStatement(self, node: ast.ExprStatement) -> None:
        self.visit(node.expr)

    # Expressions

    def visit_Integer(self, node: ast.Integer) -> Type:
        return self.typed(node, literal_type(node.value))

    def visit_String(self, node: ast.String) -> Type:
        return self.typed(node, string_type(len(node.value.encode()) + 1))

    def visit_Builtin(self, node: ast.Builtin) -> Type:
        builtin = BUILTIN_VARIABLES.get(node.name)
        return self.typed(node, builtin.type if builtin else NONE_T)

    def visit_Map(self, node: ast.Map) -> Type:
        key = tuple(self.visit(key) for key in node.keys)
        info = self.maps.setdefault(node.name, MapInfo(node.name, keyed=bool(key), first_access=node))
        if key and info.keyed:
            info.key = _merge_keys(info.key, key)
        value = info.value if info.value is not None else NONE_T
        return self.typed(node, value)

    def visit_Call(self, node: ast.Call) -> Type:
        for arg in node.args:
            self.visit(arg)
        return self.typed(node, _CALL_TYPES.get(node.name, NONE_T))

    def visit_Unop(self, node: ast.Unop) -> Type:
        operand = self.visit(node.operand)
        constant = constant_value(node)
        if constant is not None:
            return self.typed(node, literal_type(constant))
        if node.op == "!":
            return self.typed(node, BOOL_T)
        if operand.kind not in (INT, BOOL):
            return self.typed(node, NONE_T)
        return self.typed(node, Type(INT, 8, operand.signed))

    def visit_Binop(self, node: ast.Binop) -> Type:
        left, right = self.visit(node.left), self.visit(node.right)
        if node.op in COMPARISONS | LOGICAL:
            return self.typed(node, BOOL_T)
        if left.kind not in (INT, BOOL) or right.kind not in (INT, BOOL):
            return self.typed(node, NONE_T)
        constant = constant_value(node)
        if constant is not None:
            return self.typed(node, literal_type(constant))
        signed = node.op == "-" or _really_signed(node.left, left) or _really_signed(node.right, right)
        return self.typed(node, Type(INT, 8, signed))


def _really_signed(node: ast.Node, type_: Type) -> bool:
    """Signed, and not a literal that is >= 0 (such a literal adapts to the other operand)."""
    constant = constant_value(node)
    return type_.signed and (constant is None or constant < 0)


def _stored(value: Type) -> Type:
    """The map value type an assignment of `value` creates."""
    if value.kind == BOOL:
        return BOOL_T
    return value


def _merge_keys(known: tuple[Type, ...] | None, key: tuple[Type, ...]) -> tuple[Type, ...]:
    if known is None:
        return key
    if len(known) != len(key) or any(a.kind != b.kind for a, b in zip(known, key)):
        return known  # a mismatch: the checker reports it
    return tuple(replace(a, size=max(a.size, b.size)) if a.kind == STRING else a for a, b in zip(known, key))
