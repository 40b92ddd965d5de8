"""The syntax tree. Every node carries the span of the source it came from.

Nodes are compared by identity (eq=False), so passes can key side tables (types, event ids) by node.
Class names follow the grammar's rule names. Passes never change a tree they are given: a pass that
rewrites returns a new tree (`Transformer`), sharing the nodes it does not change.
"""

from __future__ import annotations

from typing import Any, Iterator

from bpftc.source import Span
from common.record import field, field_names, record, replace


@record(eq=False, slots=True)
class Node:
    span: Span


# Types as written in casts, `let` declarations and sizeof.


@record(eq=False, slots=True)
class TypeSpec(Node):
    name: str  # 'uint8', 'string', 'task_struct'...
    struct_kind: str = ""  # 'struct', 'union' or 'enum' before the name; '' otherwise
    pointer_depth: int = 0
    array_length: int | None = None  # `[N]`; 0 for `[]`; None when not an array
    of: Node | None = None  # typeof(X): the expression or TypeSpec X (name is 'typeof')


# Expressions


@record(eq=False, slots=True)
class Integer(Node):
    value: int


@record(eq=False, slots=True)
class String(Node):
    value: bytes  # escapes resolved; no trailing NUL


@record(eq=False, slots=True)
class Bool(Node):
    value: bool


@record(eq=False, slots=True)
class Builtin(Node):
    name: str


@record(eq=False, slots=True)
class Variable(Node):
    name: str  # '$x'


@record(eq=False, slots=True)
class Positional(Node):
    index: int  # $1 is 1


@record(eq=False, slots=True)
class PositionalCount(Node):
    pass


@record(eq=False, slots=True)
class Map(Node):
    name: str  # '@times', or '@' for the anonymous map
    keys: list[Node]  # [] for a map without keys


@record(eq=False, slots=True)
class Call(Node):
    name: str
    args: list[Node]


@record(eq=False, slots=True)
class Binop(Node):
    op: str
    left: Node
    right: Node


@record(eq=False, slots=True)
class Unop(Node):
    op: str  # '-', '!', '~', '*' (dereference), '&' (address of)
    operand: Node


@record(eq=False, slots=True)
class Conditional(Node):
    condition: Node
    then: Node
    otherwise: Node


@record(eq=False, slots=True)
class Cast(Node):
    """`(type)expr` as written, or a conversion the compiler made explicit (passes/convert.py):
    then `type` is None and the target is the cast node's type in the TypeMap."""

    type: TypeSpec | None
    operand: Node


@record(eq=False, slots=True)
class Field(Node):
    operand: Node
    name: str  # '0' for a tuple element, 'a' for a record or struct field
    arrow: bool = False  # written `->`


@record(eq=False, slots=True)
class Index(Node):
    operand: Node
    index: Node


@record(eq=False, slots=True)
class Tuple(Node):
    elements: list[Node]


@record(eq=False, slots=True)
class Record(Node):
    names: list[str]
    values: list[Node]


@record(eq=False, slots=True)
class Increment(Node):
    op: str  # '++' or '--'
    prefix: bool
    target: Node  # a Variable or a Map


@record(eq=False, slots=True)
class Sizeof(Node):
    operand: Node  # a TypeSpec or an expression


@record(eq=False, slots=True)
class Offsetof(Node):
    type: TypeSpec
    path: list[str]


@record(eq=False, slots=True)
class BlockExpr(Node):
    statements: list[Node]
    value: Node | None  # None: a block that gives no value (a macro that only does things)


# Statements


@record(eq=False, slots=True)
class Assignment(Node):
    target: Node | None  # Variable, Map, or None for `_ = expr`
    value: Node


@record(eq=False, slots=True)
class CompoundAssignment(Node):
    target: Node  # Variable or Map
    op: str  # '+', '<<'... (without '=')
    value: Node


@record(eq=False, slots=True)
class Let(Node):
    variable: Variable
    type: TypeSpec | None
    value: Node | None


@record(eq=False, slots=True)
class ExprStatement(Node):
    expr: Node


@record(eq=False, slots=True)
class Jump(Node):
    kind: str  # 'break', 'continue' or 'return'


@record(eq=False, slots=True)
class Block(Node):
    statements: list[Node]


@record(eq=False, slots=True)
class If(Node):
    condition: Node
    then: Block
    otherwise: Node | None  # a Block, an If (else if) or None


@record(eq=False, slots=True)
class Unroll(Node):
    count: Node
    body: Block


@record(eq=False, slots=True)
class While(Node):
    condition: Node
    body: Block


@record(eq=False, slots=True)
class ForRange(Node):
    variable: Variable
    start: Node
    end: Node
    body: Block


@record(eq=False, slots=True)
class ForMap(Node):
    variable: Variable
    map: Map
    body: Block


# Probes and the program


@record(eq=False, slots=True)
class AttachPoint(Node):
    text: str  # as written: 'tracepoint:syscalls:sys_enter_read'
    provider: str  # the part before the first ':'
    parts: tuple[str, ...]  # the parts after it


@record(eq=False, slots=True)
class Probe(Node):
    attach_points: list[AttachPoint]
    predicate: Node | None
    body: Block


@record(eq=False, slots=True)
class ConfigItem(Node):
    name: str
    value: int | str | bool


@record(eq=False, slots=True)
class Macro(Node):
    name: str
    parameters: list[str]  # '$x' (a variable), '@m' (a map) or 'x' (an expression)
    body: Block


@record(eq=False, slots=True)
class MapDeclaration(Node):
    """`let @name = kind(entries);` at the top level: the map's kernel type and size."""

    name: str
    kind: str  # one of bpftc/builtins.py's MAP_DECLARATION_KINDS, when valid
    entries: int


@record(eq=False, slots=True)
class Program(Node):
    config: list[ConfigItem]
    probes: list[Probe]
    macros: list[Macro] = field(default_factory=list)
    map_declarations: list[MapDeclaration] = field(default_factory=list)


def children(node: Node) -> Iterator[Node]:
    """The direct child nodes of `node`, in source order."""
    for name in field_names(node):
        value = getattr(node, name)
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
        for name in field_names(node):
            value = getattr(node, name)
            if isinstance(value, Node):
                new = self.visit(value)
                if new is not value:
                    changes[name] = new
            elif isinstance(value, list) and any(isinstance(item, Node) for item in value):
                new_list = [self.visit(item) if isinstance(item, Node) else item for item in value]
                if any(new is not old for new, old in zip(new_list, value)):
                    changes[name] = new_list
        return replace(node, **changes) if changes else node


def walk(node: Node) -> Iterator[Node]:
    """`node` and every node below it, parents before children, without recursion."""
    pending = [node]
    while pending:
        current = pending.pop()
        yield current
        pending.extend(reversed(list(children(current))))
