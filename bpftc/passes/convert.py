"""Convert: make every implicit conversion an explicit `Cast` node, so code generation reads the type
of each value it handles and never works one out.

Consumes the checked program and its `Resolution`; returns a new program and a new `Resolution`
whose TypeMap also types the new nodes (the input tree and tables are not changed). A conversion is
added where a value meets a type it does not have:

- the value of an assignment or `let`, to the variable's or the map's type;
- a map key, to the map's key type (each key of a multi-key map to its element);
- the operands of arithmetic and comparisons, to the 64-bit type of the operation;
- the branches of a ternary, to its type;
- the argument of an aggregation and the code of exit(), to a 64-bit integer.

A Cast node made here has `type=None`; its target is its entry in the TypeMap. Reports nothing.
"""

from __future__ import annotations

from bpftc import ast
from bpftc.builtins import FUNCTIONS
from bpftc.passes.resolve import COMPARISONS, LOGICAL, Resolution, arithmetic_signed
from bpftc.types import INT64, Aggregate, Bool, Int, Record, Tuple, Type, unify
from common.record import replace


def convert(program: ast.Program, resolution: Resolution) -> tuple[ast.Program, Resolution]:
    converted = replace(resolution, types=dict(resolution.types), probe_names={}, wildcard_probes=set())
    converter = _Converter(converted)
    new_program = converter.visit(program)
    for old, new in zip(program.probes, new_program.probes):
        converted.probe_names[new] = resolution.probe_names[old]
        if old in resolution.wildcard_probes:
            converted.wildcard_probes.add(new)
    return new_program, converted


class _Converter(ast.Transformer):
    def __init__(self, resolution: Resolution) -> None:
        self.resolution = resolution
        self.types = resolution.types

    def visit(self, node: ast.Node) -> ast.Node:
        new = super().visit(node)
        if new is not node and node in self.types and new not in self.types:
            self.types[new] = self.types[node]
        return new

    def cast(self, node: ast.Node, target: Type) -> ast.Node:
        """`node` converted to `target`: a new Cast node, or `node` itself when it has that type."""
        source = self.types.get(node)
        if source is None or source == target or isinstance(target, Aggregate):
            return node
        cast = ast.Cast(node.span, None, node)
        self.types[cast] = target
        return cast

    # Statements

    def visit_Assignment(self, node: ast.Assignment) -> ast.Node:
        target = self.visit(node.target) if node.target is not None else None
        value = self.visit(node.value)
        if isinstance(target, ast.Variable):
            value = self.cast(value, self.resolution.bindings[target].type)
        elif isinstance(target, ast.Map):
            value = self.cast(value, self.resolution.maps[target.name].value)
        return ast.Assignment(node.span, target, value)

    def visit_Let(self, node: ast.Let) -> ast.Node:
        if node.value is None:
            return node
        value = self.cast(self.visit(node.value), self.resolution.bindings[node.variable].type)
        return ast.Let(node.span, node.variable, node.type, value)

    # Expressions

    def visit_Map(self, node: ast.Map) -> ast.Node:
        keys = [self.visit(key) for key in node.keys]
        key_type = self.resolution.maps[node.name].key
        if len(keys) == 1:
            keys = [self.cast(keys[0], key_type)]
        elif keys and isinstance(key_type, Tuple):
            keys = [self.cast(key, element) for key, element in zip(keys, key_type.elements)]
        return ast.Map(node.span, node.name, keys)

    def visit_Binop(self, node: ast.Binop) -> ast.Node:
        left, right = self.visit(node.left), self.visit(node.right)
        result = self.types[node]
        if node.op in LOGICAL or isinstance(result, Bool) and node.op not in COMPARISONS:
            return ast.Binop(node.span, node.op, left, right)
        if not _integers(self.types.get(left), self.types.get(right)):
            left_type, right_type = self.types.get(left), self.types.get(right)
            if isinstance(left_type, (Tuple, Record)):  # compared as the type that holds both
                common = unify(left_type, right_type)
                left, right = self.cast(left, common), self.cast(right, common)
            return ast.Binop(node.span, node.op, left, right)
        if node.op in COMPARISONS:
            operation = Int(64, arithmetic_signed(node, self.types) and node.op != "-")
        else:
            operation = result if isinstance(result, Int) and result.bits == 64 else Int(64, result.signed)
        return ast.Binop(node.span, node.op, self.cast(left, operation), self.cast(right, operation))

    def visit_Conditional(self, node: ast.Conditional) -> ast.Node:
        condition = self.visit(node.condition)
        result = self.types[node]
        then = condition if node.then is node.condition else self.visit(node.then)
        otherwise = self.cast(self.visit(node.otherwise), result)
        if node.then is not node.condition:
            then = self.cast(then, result)
        return ast.Conditional(node.span, condition, then, otherwise)

    def visit_Call(self, node: ast.Call) -> ast.Node:
        args = [self.visit(arg) for arg in node.args]
        function = FUNCTIONS.get(node.name)
        if function is not None and function.aggregation and args:
            value_type = self.types.get(args[0])
            if isinstance(value_type, (Int, Bool)):
                args[0] = self.cast(args[0], Int(64, isinstance(value_type, Int) and value_type.signed))
        if node.name == "exit" and args:
            args[0] = self.cast(args[0], INT64)
        if node.name in ("delete", "has_key") and len(args) == 2:
            args[1] = self.cast(args[1], self.resolution.maps[args[0].name].key)
        return ast.Call(node.span, node.name, args)


def _integers(*types: Type | None) -> bool:
    return all(isinstance(t, (Int, Bool)) for t in types)
