"""Desugar: rewrite spellings that mean the same as a core construct, so later passes see one form.

- the original README's 2017 spellings: `quantize(n)` is `hist(n)`; `@m[k] = delete()` is
  `delete(@m, k)`;
- `delete(@m[k])` (deprecated in bpftrace, still accepted) is `delete(@m, k)`;
- compound assignment `x op= e` is `x = x op e`;
- config settings are named in lower case without BPFTRACE_; 0 and 1 are false and true;
- `pid()`, `comm()`... with no arguments are the builtins `pid`, `comm`; so are `nsecs(monotonic)`,
  `pid(init)` and `tid(init)`.

Consumes an `ast.Program`; returns a new one (the input is not changed). Reports nothing: the
checker reports what stays wrong.
"""

from __future__ import annotations

import copy

from bpftc import ast
from bpftc.builtins import CALLABLE_BUILTINS, CONFIG_SETTINGS, DEFAULT_MODES, LEGACY_FUNCTIONS


def desugar(program: ast.Program) -> ast.Program:
    return _Desugar().visit(program)


class _Desugar(ast.Transformer):
    def visit_ConfigItem(self, node: ast.ConfigItem) -> ast.Node:
        """`BPFTRACE_PRINT_MAPS_ON_EXIT = 0` is `print_maps_on_exit = false`."""
        name = node.name.lower().removeprefix("bpftrace_")
        value = node.value
        if CONFIG_SETTINGS.get(name) is bool and type(value) is int and value in (0, 1):
            value = bool(value)
        return ast.ConfigItem(node.span, name, value)

    def visit_Assignment(self, node: ast.Assignment) -> ast.Node:
        value = node.value
        if (
            isinstance(node.target, ast.Map)
            and isinstance(value, ast.Call)
            and value.name == "delete"
            and not value.args
        ):
            return ast.ExprStatement(node.span, _delete(node.span, self.visit(node.target)))
        return self.generic_visit(node)

    def visit_CompoundAssignment(self, node: ast.CompoundAssignment) -> ast.Node:
        target = self.visit(node.target)
        # The read is a node of its own: later passes key types and bindings by node identity.
        value = ast.Binop(node.span, node.op, copy.deepcopy(target), self.visit(node.value))
        return ast.Assignment(node.span, target, value)

    def visit_Call(self, node: ast.Call) -> ast.Node:
        node = self.generic_visit(node)
        if node.name in LEGACY_FUNCTIONS:
            return ast.Call(node.span, LEGACY_FUNCTIONS[node.name], node.args)
        if node.name == "delete" and len(node.args) == 1 and isinstance(node.args[0], ast.Map):
            return _delete(node.span, node.args[0])
        if node.name in CALLABLE_BUILTINS and not node.args:
            return ast.Builtin(node.span, node.name)
        if (
            len(node.args) == 1
            and isinstance(node.args[0], ast.Builtin)
            and (node.name, node.args[0].name) in DEFAULT_MODES
        ):
            return ast.Builtin(node.span, node.name)
        return node


def _delete(span, target: ast.Map) -> ast.Call:
    """delete(@m, key) for an access `@m[k1, k2]`; delete(@m) for a map without keys."""
    if not target.keys:
        return ast.Call(span, "delete", [target])
    key = target.keys[0] if len(target.keys) == 1 else ast.Tuple(target.span, list(target.keys))
    return ast.Call(span, "delete", [ast.Map(target.span, target.name, []), key])
