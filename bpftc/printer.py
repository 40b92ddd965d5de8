"""The AST as canonical text, one node per line, indented by depth: for `--dump parse` and tests.

Probe
 AttachPoint tracepoint:syscalls:sys_enter_read
 AssignMap
  Map @start
   Builtin tid
  Builtin nsecs
"""

from __future__ import annotations

from bpftc import ast

_LABELS = {
    ast.Integer: lambda node: str(node.value),
    ast.String: lambda node: repr(node.value),
    ast.Builtin: lambda node: node.name,
    ast.Map: lambda node: node.name,
    ast.Call: lambda node: f"{node.name}()",
    ast.Binop: lambda node: node.op,
    ast.Unop: lambda node: node.op,
    ast.AttachPoint: lambda node: node.text,
}


def print_ast(node: ast.Node) -> str:
    lines: list[str] = []
    _print(node, 0, lines)
    return "\n".join(lines) + "\n"


def _print(node: ast.Node, depth: int, lines: list[str]) -> None:
    label = _LABELS.get(type(node))
    text = type(node).__name__ + (f" {label(node)}" if label else "")
    if isinstance(node, ast.Probe) and node.predicate is not None:
        lines.append(" " * depth + text)
        for attach_point in node.attach_points:
            _print(attach_point, depth + 1, lines)
        lines.append(" " * (depth + 1) + "Predicate")
        _print(node.predicate, depth + 2, lines)
        for statement in node.body:
            _print(statement, depth + 1, lines)
        return
    lines.append(" " * depth + text)
    for child in ast.children(node):
        _print(child, depth + 1, lines)
