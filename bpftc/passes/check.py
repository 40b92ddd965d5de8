"""Check: report every type, arity and probe-context error, with its span.

Consumes the program, its probe targets and the `Resolution` from resolve.py; produces nothing but
diagnostics. Messages use bpftrace 0.27's wording where bpftrace has the same error.
"""

from __future__ import annotations

from common.printf_format import INTEGER_CONVERSIONS, conversions
from common.types import BOOL, COUNT, HIST, INT, NONE, STRING, Type, type_name

from bpftc import ast
from bpftc.builtins import BUILTIN_VARIABLES, FUNCTIONS, arity_message
from bpftc.diagnostics import Context, Diagnostics
from bpftc.passes.probes import ProbeTargets
from bpftc.passes.resolve import MapInfo, Resolution

_AGGREGATION_EXAMPLES = {COUNT: "@y = count();", HIST: "@y = hist(retval);"}


def check(program: ast.Program, targets: ProbeTargets, resolution: Resolution, diagnostics: Diagnostics) -> None:
    for probe in program.probes:
        providers = {targets[point].provider for point in probe.attach_points if point in targets}
        _Checker(resolution, providers, diagnostics).visit(probe)


def kind_name(type_: Type) -> str:
    """The coarse names bpftrace uses in argument errors: 'int', 'string'..."""
    return {INT: "int", BOOL: "int"}.get(type_.kind, type_.kind)


class _Checker(ast.Visitor):
    def __init__(self, resolution: Resolution, providers: set[str], diagnostics: Diagnostics) -> None:
        self.types = resolution.types
        self.maps = resolution.maps
        self.providers = providers
        self.diagnostics = diagnostics

    def error(self, node: ast.Node, message: str, **details) -> None:
        self.diagnostics.error(node.span, message, **details)

    # Statements

    def visit_Probe(self, node: ast.Probe) -> None:
        if node.predicate is not None:
            self.visit(node.predicate)
            if self.types[node.predicate].kind not in (INT, BOOL, NONE):
                self.error(node.predicate, f"Invalid type for predicate: {type_name(self.types[node.predicate])}")
        for statement in node.body:
            self.visit(statement)

    def visit_AssignMap(self, node: ast.AssignMap) -> None:
        self._check_map_access(node.map)
        value = node.value
        if _is_aggregation(value):
            self._check_call(value)
        elif isinstance(value, ast.Map) and self.maps[value.name].value.kind in (COUNT, HIST):
            self._check_map_access(value)
            aggregation = self.maps[value.name].value.kind
            self.error(
                node,
                f"Map value '{aggregation}_t' cannot be assigned from one map to another. The function "
                f"that returns this type must be called directly e.g. `{_AGGREGATION_EXAMPLES[aggregation]}`.",
            )
            return
        else:
            self.visit(value)
        self._check_assigned_value(node)

    def visit_ExprStatement(self, node: ast.ExprStatement) -> None:
        self.visit(node.expr)

    # Expressions

    def visit_Builtin(self, node: ast.Builtin) -> None:
        builtin = BUILTIN_VARIABLES.get(node.name)
        if builtin is None:
            self.error(node, f"Unknown identifier: '{node.name}'")
        elif builtin.providers and not self.providers <= set(builtin.providers):
            self.error(node, builtin.context_error)

    def visit_Map(self, node: ast.Map) -> None:
        self._check_map_access(node)
        value = self.maps[node.name].value
        if value.kind in (COUNT, HIST):
            self.error(node, f"Reading the value of a {type_name(value)} map is not supported yet")

    def visit_Call(self, node: ast.Call) -> None:
        function = FUNCTIONS.get(node.name)
        if function is not None and function.map_value:
            self.error(node, f"{node.name}() must be assigned directly to a map")
            return
        self._check_call(node)

    def visit_Unop(self, node: ast.Unop) -> None:
        self.visit(node.operand)
        operand = self.types[node.operand]
        if operand.kind not in (INT, BOOL, NONE):
            self.error(node, f"Invalid operand to unary '{node.op}': {type_name(operand)}")

    def visit_Binop(self, node: ast.Binop) -> None:
        self.visit(node.left)
        self.visit(node.right)
        left, right = self.types[node.left], self.types[node.right]
        if NONE in (left.kind, right.kind):
            return  # already reported where the operand is
        if left.kind == right.kind == STRING and node.op in ("==", "!="):
            return
        if left.kind not in (INT, BOOL) or right.kind not in (INT, BOOL):
            context = (
                Context(node.left.span, f"left ({type_name(left)})"),
                Context(node.right.span, f"right ({type_name(right)})"),
            )
            message = f"Type mismatch for '{node.op}': comparing {type_name(left)} with {type_name(right)}"
            self.error(node, message, context=context)

    # Calls

    def _check_call(self, node: ast.Call) -> None:
        for arg in node.args:
            if not (node.name == "delete" and isinstance(arg, ast.Map)):
                self.visit(arg)
        function = FUNCTIONS.get(node.name)
        if function is None:
            self.error(node, f"Unknown function: '{node.name}'")
            return
        if not function.min_args <= len(node.args) <= function.max_args:
            self.error(node, arity_message(node.name, function, len(node.args)))
            return
        check_arguments = getattr(self, f"_check_{node.name}_arguments", None)
        if check_arguments is not None:
            check_arguments(node)

    def _check_hist_arguments(self, node: ast.Call) -> None:
        self._expect_int_argument(node)
        if len(node.args) == 2:
            self.error(node.args[1], "hist() with a second argument (linear steps per power of 2) is not supported yet")

    def _check_exit_arguments(self, node: ast.Call) -> None:
        if node.args:
            self._expect_int_argument(node)

    def _expect_int_argument(self, node: ast.Call) -> None:
        arg_type = self.types[node.args[0]]
        if arg_type.kind not in (INT, BOOL, NONE):
            self.error(node, f"{node.name}() only supports int arguments ({kind_name(arg_type)} provided)")

    def _check_delete_arguments(self, node: ast.Call) -> None:
        (target,) = node.args
        if not isinstance(target, ast.Map):
            self.error(node, "delete() expects a map element, e.g. delete(@m[key])")
            return
        self._check_map_access(target)

    def _check_printf_arguments(self, node: ast.Call) -> None:
        format_node, *args = node.args
        if not isinstance(format_node, ast.String):
            provided = kind_name(self.types[format_node])
            self.error(node, f"printf() expects a string literal ({provided} provided)")
            return
        specs = conversions(format_node.value)
        if len(args) != len(specs):
            which = "not enough" if len(args) < len(specs) else "too many"
            self.error(node, f"{which} arguments for format string ({len(args)} supplied, {len(specs)} expected)")
            return
        for spec, arg in zip(specs, args):
            arg_type = self.types[arg]
            if arg_type.kind == STRING and spec.conversion in INTEGER_CONVERSIONS:
                self.error(node, f"unsupported format specifier for type '{type_name(arg_type)}': {spec.conversion}")
            elif arg_type.kind in (COUNT, HIST):
                self.error(arg, f"printf() cannot print a value of type '{type_name(arg_type)}'")

    # Maps

    def _check_map_access(self, node: ast.Map) -> None:
        for key in node.keys:
            self.visit(key)
        info = self.maps[node.name]
        if bool(node.keys) != info.keyed:
            self.error(node, _keyed_mismatch(node))
            return
        key = tuple(self.types[key] for key in node.keys)
        if node.keys and not _same_kinds(key, info.key):
            self.error(
                node,
                f"Argument mismatch for {node.name}: trying to access with arguments: "
                f"'{_key_name(key)}' when map expects arguments: '{_key_name(info.key)}'",
            )
        for key_node, key_type in zip(node.keys, key):
            if key_type.kind not in (INT, BOOL, STRING, NONE):
                self.error(key_node, f"{type_name(key_type)} cannot be used as a map key")

    def _check_assigned_value(self, node: ast.AssignMap) -> None:
        value = self.types[node.value]
        info: MapInfo = self.maps[node.map.name]
        if value.kind == NONE:
            # Unknown names were reported where they are; calls that return nothing are reported here.
            if isinstance(node.value, ast.Call) and node.value.name in FUNCTIONS:
                self.error(node, f"{node.value.name}() returns no value to assign to {node.map.name}")
            return
        if not _same_kinds((value,), (info.value,)):
            # bpftrace points at an aggregation call itself, at other values the whole assignment.
            where = node.value if _is_aggregation(node.value) else node
            self.error(
                where,
                f"Type mismatch for {node.map.name}: trying to assign value of type "
                f"'{type_name(value)}' when map already has a type '{type_name(info.value)}'",
            )


def _is_aggregation(node: ast.Node) -> bool:
    return isinstance(node, ast.Call) and node.name in FUNCTIONS and FUNCTIONS[node.name].map_value


def _keyed_mismatch(node: ast.Map) -> str:
    if node.keys:
        return (
            f"{node.name} used as a map with an explicit key (non-scalar map), "
            "previously used without an explicit key (scalar map)"
        )
    return (
        f"{node.name} used as a map without an explicit key (scalar map), "
        "previously used with an explicit key (non-scalar map)"
    )


def _same_kinds(a: tuple[Type, ...], b: tuple[Type, ...] | None) -> bool:
    def kind(t: Type) -> str:
        return INT if t.kind == BOOL else t.kind

    return b is None or (len(a) == len(b) and all(kind(x) == kind(y) for x, y in zip(a, b)))


def _key_name(key: tuple[Type, ...] | None) -> str:
    key = key or ()
    if len(key) == 1:
        return type_name(key[0])
    return "(" + ",".join(type_name(t) for t in key) + ")"
