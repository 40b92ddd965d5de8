"""Desugar: rewrite the original README's 2017 spellings into current bpftrace.

- `quantize(n)` is `hist(n)`;
- `@m[k] = delete()` is `delete(@m[k])`.

Consumes and returns an `ast.Program`; reports nothing (the checker reports what stays wrong).
"""

from __future__ import annotations

from bpftc import ast
from bpftc.builtins import LEGACY_FUNCTIONS


def desugar(program: ast.Program) -> ast.Program:
    for probe in program.probes:
        probe.body = [_statement(statement) for statement in probe.body]
        _rename_legacy_calls(probe)
    return program


def _statement(statement: ast.Node) -> ast.Node:
    if (
        isinstance(statement, ast.AssignMap)
        and isinstance(statement.value, ast.Call)
        and statement.value.name == "delete"
        and not statement.value.args
    ):
        call = ast.Call(statement.span, "delete", [statement.map])
        return ast.ExprStatement(statement.span, call)
    return statement


def _rename_legacy_calls(node: ast.Node) -> None:
    if isinstance(node, ast.Call) and node.name in LEGACY_FUNCTIONS:
        node.name = LEGACY_FUNCTIONS[node.name]
    for child in ast.children(node):
        _rename_legacy_calls(child)
