"""The syntax tree. Every node carries the span of the source it came from.

Nodes are compared by identity (eq=False), so passes can key side tables (types, event ids) by node.
Class names follow the grammar's rule names. Passes never change a tree they are given: a pass that
rewrites returns a new tree (`Transformer`), sharing the nodes it does not change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace
from typing import Any, Iterator

from bpftc.source import Span


@dataclass(eq=False, slots=True)
class Node:
    span: Span


# Types as written in casts, `let` declarations and sizeof.


@dataclass(eq=False, slots=True)
class TypeSpec(Node):
    name: str  # 'uint8', 'string', 'task_struct'...
    struct_kind: str = ""  # 'struct', 'union' or 'enum' before the name; '' otherwise
    pointer_depth: int = 0
    array_length: int | None = None  # `[N]`; 0 for `[]`; None when not an array
    of: Node | None = None  # typeof(X): the expression or TypeSpec X (name is 'typeof')


# Expressions


@dataclass(eq=False, slots=True)
class Integer(Node):
    value: int


@dataclass(eq=False, slots=True)
class String(Node):
    value: bytes  # escapes resolved; no trailing NUL


@dataclass(eq=False, slots=True)
class Bool(Node):
    value: bool


@dataclass(eq=False, slots=True)
class Builtin(Node):
    name: str


@dataclass(eq=False, slots=True)
class Variable(Node):
    name: str  # '$x'


@dataclass(eq=False, slots=True)
class Positional(Node):
    index: int  # $1 is 1


@dataclass(eq=False, slots=True)
class PositionalCount(Node):
    pass


@dataclass(eq=False, slots=True)
class Map(Node):
    name: str  # '@times', or '@' for the anonymous map
    keys: list[Node]  # [] for a map without keys


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
    op: str  # '-', '!', '~', '*' (dereference), '&' (address of)
    operand: Node


@dataclass(eq=False, slots=True)
class Conditional(Node):
    condition: Node
    then: Node
    otherwise: Node


@dataclass(eq=False, slots=True)
class Cast(Node):
    """`(type)expr` as written, or a conversion the compiler made explicit (passes/convert.py):
    then `type` is None and the target is the cast node's type in the TypeMap."""

    type: TypeSpec | None
    operand: Node


@dataclass(eq=False, slots=True)
class Field(Node):
    operand: Node
    name: str  # '0' for a tuple element, 'a' for a record or struct field
    arrow: bool = False  # written `->`


@dataclass(eq=False, slots=True)
class Index(Node):
    operand: Node
    index: Node


@dataclass(eq=False, slots=True)
class Tuple(Node):
    elements: list[Node]


@dataclass(eq=False, slots=True)
class Record(Node):
    names: list[str]
    values: list[Node]


@dataclass(eq=False, slots=True)
class Increment(Node):
    op: str  # '++' or '--'
    prefix: bool
    target: Node  # a Variable or a Map


@dataclass(eq=False, slots=True)
class Sizeof(Node):
    operand: Node  # a TypeSpec or an expression


@dataclass(eq=False, slots=True)
class Offsetof(Node):
    type: TypeSpec
    path: list[str]


@dataclass(eq=False, slots=True)
class BlockExpr(Node):
    statements: list[Node]
    value: Node | None  # None: a block that gives no value (a macro that only does things)


# Statements


@dataclass(eq=False, slots=True)
class Assignment(Node):
    target: Node | None  # Variable, Map, or None for `_ = expr`
    value: Node


@dataclass(eq=False, slots=True)
class CompoundAssignment(Node):
    target: Node  # Variable or Map
    op: str  # '+', '<<'... (without '=')
    value: Node


@dataclass(eq=False, slots=True)
class Let(Node):
    variable: Variable
    type: TypeSpec | None
    value: Node | None


@dataclass(eq=False, slots=True)
class ExprStatement(Node):
    expr: Node


@dataclass(eq=False, slots=True)
class Jump(Node):
    kind: str  # 'break', 'continue' or 'return'


@dataclass(eq=False, slots=True)
class Block(Node):
    statements: list[Node]


@dataclass(eq=False, slots=True)
class If(Node):
    condition: Node
    then: Block
    otherwise: Node | None  # a Block, an If (else if) or None


@dataclass(eq=False, slots=True)
class Unroll(Node):
    count: Node
    body: Block


@dataclass(eq=False, slots=True)
class While(Node):
    condition: Node
    body: Block


@dataclass(eq=False, slots=True)
class ForRange(Node):
    variable: Variable
    start: Node
    end: Node
    body: Block


@dataclass(eq=False, slots=True)
class ForMap(Node):
    variable: Variable
    map: Map
    body: Block


# Probes and the program


@dataclass(eq=False, slots=True)
class AttachPoint(Node):
    text: str  # as written: 'tracepoint:syscalls:sys_enter_read'
    provider: str  # the part before the first ':'
    parts: tuple[str, ...]  # the parts after it


@dataclass(eq=False, slots=True)
class Probe(Node):
    attach_points: list[AttachPoint]
    predicate: Node | None
    body: Block


@dataclass(eq=False, slots=True)
class ConfigItem(Node):
    name: str
    value: int | str | bool


@dataclass(eq=False, slots=True)
class Macro(Node):
    name: str
    parameters: list[str]  # '$x' (a variable), '@m' (a map) or 'x' (an expression)
    body: Block


@dataclass(eq=False, slots=True)
class MapDeclaration(Node):
    """`let @name = kind(entries);` at the top level: the map's kernel type and size."""

    name: str
    kind: str  # one of bpftc/builtins.py's MAP_DECLARATION_KINDS, when valid
    entries: int


@dataclass(eq=False, slots=True)
class Program(Node):
    config: list[ConfigItem]
    probes: list[Probe]
    macros: list[Macro] = dataclasses.field(default_factory=list)
    map_declarations: list[MapDeclaration] = dataclasses.field(default_factory=list)


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


class Transformer(Visitor):
    """A visitor that returns a tree: unhandled nodes are copied only when a child changed, so an
    unchanged subtree is shared with the input tree and keeps its identity (and its TypeMap entries)."""

    def generic_visit(self, node: Node) -> Node:
        changes = {}
        for field in fields(node):
            value = getattr(node, field.name)
            if isinstance(value, Node):
                new = self.visit(value)
                if new is not value:
                    changes[field.name] = new
            elif isinstance(value, list) and any(isinstance(item, Node) for item in value):
                new_list = [self.visit(item) if isinstance(item, Node) else item for item in value]
                if any(new is not old for new, old in zip(new_list, value)):
                    changes[field.name] = new_list
        return replace(node, **changes) if changes else node


def walk(node: Node) -> Iterator[Node]:
    """`node` and every node below it, parents before children, without recursion."""
    pending = [node]
    while pending:
        current = pending.pop()
        yield current
        pending.extend(reversed(list(children(current))))
