"""The syntax tree. Every node carries the span of the source it came from.

Nodes are compared by identity (eq=False), so passes can key side tables (types, event ids) by node.
Class names follow the grammar's rule names.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterator

from bpftc.source import Span


@dataclass(eq=False, slots=True)
class Node:
    span: Span


# Expressions


@dataclass(eq=False, slots=True)
class Integer(Node):
    value: int


@dataclass(eq=False, slots=True)
class String(Node):
    value: str


@dataclass(eq=False, slots=True)
class Builtin(Node):
    name: str


@dataclass(eq=False, slots=True)
class Map(Node):
    name: str  # '@times', or '@' for the anonymous map
    keys: list[Node]


@dataclass(eq=False, slots=True)
class Call(Node):
    name: str
    args: list[Node]


@dataclass(eq=False, slots=True)
class Binop(Node):
    op: str
    left: Node
    right: Node


@dataclass(eq=False, slots=True)
class Unop(Node):
    op: str
    operand: Node


# Statements


@dataclass(eq=False, slots=True)
class AssignMap(Node):
    map: Map
    value: Node


@dataclass(eq=False, slots=True)
class ExprStatement(Node):
    expr: Node


# Probes


@dataclass(eq=False, slots=True)
class AttachPoint(Node):
    text: str  # as written: 'tracepoint:syscalls:sys_enter_read'
    provider: str  # the part before the first ':'
    parts: tuple[str, ...]  # the parts after it


@dataclass(eq=False, slots=True)
class Probe(Node):
    attach_points: list[AttachPoint]
    predicate: Node | None
    body: list[Node]


@dataclass(eq=False, slots=True)
class Program(Node):
    probes: list[Probe]


def children(node: Node) -> Iterator[Node]:
    """The direct child nodes of `node`, in source order."""
    for field in fields(node):
        value = getattr(node, field.name)
        if isinstance(value, Node):
            yield value
        elif isinstance(value, list):
            yield from (item for item in value if isinstance(item, Node))


class Visitor:
    """Dispatches `visit(node)` to `visit_<ClassName>`; unhandled nodes visit their children."""

    def visit(self, node: Node) -> Any:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            return self.generic_visit(node)
        return method(node)

    def generic_visit(self, node: Node) -> None:
        for child in children(node):
            self.visit(child)
