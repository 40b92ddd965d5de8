"""Macros: expand every call of a `macro NAME(params) { body }` into the body, as bpftrace does.

Consumes the parsed program; returns a new one without macros (the input is not changed). A call
`NAME(args)`, or a bare `NAME` for a macro without parameters, becomes a block expression of the
body's statements whose value is the body's last expression, if any. Parameters are bound the
way their names say: `$x` to the caller's variable, `@m` to the caller's map, a plain name to the
argument expression, copied where the body uses it (evaluated as often as it appears). The
body's own variables get names of their own (hygiene: they never meet the caller's).

Reports: duplicate macros, calls with the wrong number or kind of arguments, and recursion.
"""

from __future__ import annotations

import copy
import itertools

from bpftc import ast
from bpftc.diagnostics import Diagnostics
from common.record import record

MAX_DEPTH = 64  # macros calling macros deeper than this are taken for a recursion
# Arguments are copied where the body uses them, so nested calls can grow the program
# exponentially: expansion stops past this many copied nodes.
MAX_COPIED_NODES = 20_000


class _TooLarge(Exception):
    def __init__(self, call: ast.Node) -> None:
        self.call = call


def expand_macros(program: ast.Program, diagnostics: Diagnostics) -> ast.Program:
    macros: dict[str, ast.Macro] = {}
    for macro in program.macros:
        if macro.name in macros:
            diagnostics.error(macro.span, f"Redefinition of macro: {macro.name}")
        macros[macro.name] = macro
    if macros:
        expander = _Expander(macros, diagnostics)
        try:
            probes = [expander.visit(probe) for probe in program.probes]
        except _TooLarge as error:
            diagnostics.error(error.call.span, f"Macro expansion too large (more than {MAX_COPIED_NODES} nodes)")
            return program
        program = ast.Program(program.span, program.config, probes, [])
    _report_types_passed_as_values(program, diagnostics)
    return program


def _report_types_passed_as_values(program: ast.Program, diagnostics: Diagnostics) -> None:
    """typeof(...) is an argument for a macro's plain parameter, used in the body as a cast's type:
    anywhere else it is not a value."""
    for node in ast.walk(program):
        if isinstance(node, ast.Call):
            for argument in node.args:
                if isinstance(argument, ast.TypeSpec):
                    diagnostics.error(argument.span, f"{node.name}() takes values, not a type")


@record
class _Shared:
    counter: itertools.count
    budget: list[int]


class _Expander(ast.Transformer):
    def __init__(self, macros: dict[str, ast.Macro], diagnostics: Diagnostics, depth: int = 0, shared=None) -> None:
        self.macros = macros
        self.diagnostics = diagnostics
        self.depth = depth
        # Shared by nested expanders: the counter names expansions, the budget bounds copies.
        self.shared = shared or _Shared(itertools.count(1), [MAX_COPIED_NODES])

    def visit_Call(self, node: ast.Call) -> ast.Node:
        if node.name not in self.macros:
            return self.generic_visit(node)
        return self._expand(self.macros[node.name], [self.visit(arg) for arg in node.args], node)

    def visit_Builtin(self, node: ast.Builtin) -> ast.Node:
        macro = self.macros.get(node.name)
        if macro is None or macro.parameters:
            return node
        return self._expand(macro, [], node)

    def _expand(self, macro: ast.Macro, args: list[ast.Node], call: ast.Node) -> ast.Node:
        if len(args) != len(macro.parameters):
            self.diagnostics.error(
                call.span,
                f"Call to macro {macro.name}() has the wrong number of arguments: expected {len(macro.parameters)}, got {len(args)}",
            )
            return call
        if self.depth >= MAX_DEPTH:
            self.diagnostics.error(call.span, f"Recursive macro call: {macro.name}()")
            return call
        bindings = self._bind(macro, args, call)
        if bindings is None:
            return call
        prefix = f"$__{macro.name}_{next(self.shared.counter)}_"
        body = _Substitute(bindings, prefix, self.shared.budget, call, self.diagnostics).visit(macro.body)
        body = _Expander(self.macros, self.diagnostics, self.depth + 1, self.shared).visit(body)
        *statements, last = body.statements or [None]
        if isinstance(last, ast.ExprStatement):
            return ast.BlockExpr(call.span, statements, last.expr)
        return ast.BlockExpr(call.span, body.statements, None)

    def _bind(self, macro: ast.Macro, args: list[ast.Node], call: ast.Node) -> dict[str, ast.Node] | None:
        bindings = {}
        for parameter, arg in zip(macro.parameters, args):
            if parameter.startswith("$") and not isinstance(arg, ast.Variable):
                self.diagnostics.error(arg.span, f"Macro {macro.name}() expects a variable for {parameter}")
                return None
            if parameter.startswith("@") and not (isinstance(arg, ast.Map) and not arg.keys):
                self.diagnostics.error(arg.span, f"Macro {macro.name}() expects a map for {parameter}")
                return None
            bindings[parameter] = arg
        return bindings


class _Substitute(ast.Transformer):
    """The body with its parameters replaced and its own variables renamed."""

    def __init__(
        self, bindings: dict[str, ast.Node], prefix: str, budget: list[int], call: ast.Node, diagnostics: Diagnostics
    ) -> None:
        self.bindings = bindings
        self.prefix = prefix
        self.budget = budget  # [nodes still allowed to be copied]
        self.call = call
        self.diagnostics = diagnostics

    def visit_Builtin(self, node: ast.Builtin) -> ast.Node:
        if node.name in self.bindings:
            bound = self.bindings[node.name]
            if isinstance(bound, ast.TypeSpec):
                self.diagnostics.error(node.span, f"Macro parameter {node.name} is given a type: it can only be cast to")
                return node
            return self._copy(bound)
        return node

    def visit_TypeSpec(self, node: ast.TypeSpec) -> ast.Node:
        """`(a)x` where the call passed `typeof(...)` for `a`: a cast to that type."""
        bound = self.bindings.get(node.name)
        if bound is None or node.struct_kind:
            return self.generic_visit(node)
        if not isinstance(bound, ast.TypeSpec):
            self.diagnostics.error(node.span, f"Macro parameter {node.name} is cast to: pass it a type, typeof(...)")
            return node
        if node.pointer_depth or node.array_length is not None:
            self.diagnostics.error(node.span, f"Macro parameter {node.name} is a type: it is cast to as it is")
            return node
        return self._copy(bound)

    def _copy(self, bound: ast.Node) -> ast.Node:
        self.budget[0] -= sum(1 for _ in ast.walk(bound))
        if self.budget[0] < 0:
            raise _TooLarge(self.call)
        return copy.deepcopy(bound)  # each use is a node of its own

    def visit_Variable(self, node: ast.Variable) -> ast.Node:
        bound = self.bindings.get(node.name)
        if bound is not None:
            return ast.Variable(node.span, bound.name)
        return ast.Variable(node.span, self.prefix + node.name[1:])

    def visit_Map(self, node: ast.Map) -> ast.Node:
        keys = [self.visit(key) for key in node.keys]
        bound = self.bindings.get(node.name)
        return ast.Map(node.span, bound.name if bound is not None else node.name, keys)
