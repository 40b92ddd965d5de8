"""The AST as canonical text, one node per line, indented by depth: for `--dump` and tests.

Program
 Probe
  AttachPoint tracepoint:syscalls:sys_enter_read
  Assignment
   Map @start
    Builtin tid
   Builtin nsecs

A probe's body block is not printed as a node of its own; its predicate is, as `Predicate`. With a
TypeMap, each typed expression shows its type: `Builtin pid :: uint32`.
"""

from __future__ import annotations

from collections.abc import Callable

from bpftc import ast

_LABELS: dict[type, Callable[[ast.Node], str]] = {
    ast.Integer: lambda node: str(node.value),
    ast.String: lambda node: repr(node.value.decode("utf-8", "backslashreplace")),
    ast.Bool: lambda node: "true" if node.value else "false",
    ast.Builtin: lambda node: node.name,
    ast.Variable: lambda node: node.name,
    ast.Positional: lambda node: f"${node.index}",
    ast.Map: lambda node: node.name,
    ast.Call: lambda node: f"{node.name}()",
    ast.Binop: lambda node: node.op,
    ast.Unop: lambda node: node.op,
    ast.Field: lambda node: ("->" if node.arrow else ".") + node.name,
    ast.Increment: lambda node: node.op + (" prefix" if node.prefix else " postfix"),
    ast.CompoundAssignment: lambda node: node.op + "=",
    ast.Record: lambda node: ", ".join(node.names),
    ast.Jump: lambda node: node.kind,
    ast.AttachPoint: lambda node: node.text,
    ast.ConfigItem: lambda node: f"{node.name} = {node.value!r}",
    ast.MapDeclaration: lambda node: f"{node.name} = {node.kind}({node.entries})",
    ast.TypeSpec: lambda node: type_spec_text(node),
    ast.Offsetof: lambda node: ".".join(node.path),
}


def type_spec_text(spec: ast.TypeSpec) -> str:
    text = f"{spec.struct_kind} {spec.name}" if spec.struct_kind else spec.name
    text += "*" * spec.pointer_depth
    if spec.array_length is not None:
        text += f"[{spec.array_length or ''}]"
    return text


def print_ast(node: ast.Node, types: dict | None = None) -> str:
    lines: list[str] = []
    pending = [(node, 0)]
    while pending:  # iterative: a deeply nested expression must not exhaust Python's stack
        current, depth = pending.pop()
        if isinstance(current, str):
            lines.append(" " * depth + current)
            continue
        lines.append(" " * depth + _line(current, types))
        pending.extend(reversed(_printed_children(current, depth + 1)))
    return "\n".join(lines) + "\n"


def _line(node: ast.Node, types: dict | None) -> str:
    label = _LABELS.get(type(node))
    text = type(node).__name__ + (f" {label(node)}" if label else "")
    if types is not None and node in types:
        text += f" :: {types[node]}"
    return text


def _printed_children(node: ast.Node, depth: int) -> list[tuple[ast.Node | str, int]]:
    if isinstance(node, ast.Probe):
        items: list[tuple[ast.Node | str, int]] = [(point, depth) for point in node.attach_points]
        if node.predicate is not None:
            items += [("Predicate", depth), (node.predicate, depth + 1)]
        return items + [(statement, depth) for statement in node.body.statements]
    return [(child, depth) for child in ast.children(node)]
