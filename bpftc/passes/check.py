"""Check: report every type, arity, scope and probe-context error, with its span.

Consumes the program, its probe targets and the `Resolution` from resolve.py; produces nothing but
diagnostics. Messages use bpftrace 0.27's wording where bpftrace has the same error. Valid
bpftrace that bpftc cannot compile yet is reported as "not supported yet", at its location.
"""

from __future__ import annotations

import re

from common import schema
from common.layout import MAX_STACK_DEPTH, STACK_MODES
from common.schema import OptionSpec
from common.printf_format import INTEGER_CONVERSIONS, MAX_WIDTH, UNSUPPORTED_CONVERSIONS, conversions

from bpftc import ast, storage
from bpftc.builtins import (
    BUILTIN_VARIABLES,
    CONFIG_DEFAULTS,
    CONFIG_SETTINGS,
    CONTEXT_ERRORS,
    FUNC_PROVIDERS,
    REGISTER_PROVIDERS,
    REGISTERS,
    FUNCTIONS,
    MAP_DECLARATION_KINDS,
    PATH_PROVIDERS,
    STRING_READ_SIZE,
    PER_CPU_DECLARATIONS,
    HIST_MAX_BITS,
    NSECS_CLOCKS,
    PID_NAMESPACES,
    arity_message,
)
from bpftc.diagnostics import Context, Diagnostics
from bpftc.source import Span, span_between
from bpftc.passes.probes import ProbeTargets
from bpftc.passes.resolve import (
    COMPARISONS,
    Binding,
    MapInfo,
    Resolution,
    address_bytes,
    constant_value,
    fold_overflows,
    offset_of,
    option_of,
    parameter_offset,
    type_of_spec,
)
from bpftc.probes import PROVIDERS
from bpftc.types import (
    Aggregate,
    Enum,
    Array,
    Bool,
    Int,
    Pointer,
    Record,
    String,
    Formatted,
    Stack,
    Struct,
    Lookup,
    Symbol,
    Timestamp,
    Tuple,
    Type,
    Unknown,
    Void,
    fits,
    unify,
)

MAX_UNROLL = 100
# What reads the probe's context (its registers, its record, its attach cookie): not available in
# a for-map body, which runs as a callback of the map iteration.
MAX_BUFFER = 1024  # bytes a buf() takes at most
MAX_SEARCH_BYTES = 128 * 128  # strcontains()/strstr(): the largest haystack size × needle size
# Functions of bpftrace's standard library that bpftc does not compile yet: using one is "not
# supported yet", not "Unknown function".
NOT_YET_FUNCTIONS = {
    "buf", "cgroupid", "fail", "kptr",
    "macaddr", "ntop", "offsetof", "override", "percpu_kaddr", "reg",
    "signal", "skboutput", "socket_cookie", "tseries", "uptr",
    "memcmp",
    "unwatch", "write_user", "container_of", "is_err", "percpu", "debugf",
}  # fmt: skip
_AGGREGATE_EXAMPLES = {"count": "@y = count();", "hist": "@y = hist(retval);"}


def check(
    program: ast.Program, targets: ProbeTargets, resolution: Resolution, diagnostics: Diagnostics, unsafe: bool = False
) -> None:
    """`unsafe`: bpftc --unsafe, which allows system()."""
    for item in program.config:
        _check_config(item, diagnostics)
    _check_map_declarations(program.map_declarations, resolution, diagnostics)
    settings = {item.name: item.value for item in program.config}
    max_strlen = settings.get("max_strlen", CONFIG_DEFAULTS["max_strlen"])
    for probe in program.probes:
        contexts = _contexts(probe, targets)
        checker = _Checker(resolution, contexts, diagnostics, unsafe)
        checker.max_strlen = max_strlen if type(max_strlen) is int else CONFIG_DEFAULTS["max_strlen"]
        checker.check_probe(probe)


def _check_map_declarations(
    declarations: list[ast.MapDeclaration], resolution: Resolution, diagnostics: Diagnostics
) -> None:
    """`let @m = kind(N);`: a known kind, a size the kernel takes, and values of the kind's sort:
    per-CPU kinds hold aggregations, the others plain values."""
    seen = set()
    for declaration in declarations:
        if declaration.name in seen:
            diagnostics.error(declaration.span, f"Map {declaration.name} is declared more than once")
        seen.add(declaration.name)
        if declaration.kind not in MAP_DECLARATION_KINDS:
            hint = "Valid map types: " + ", ".join(reversed(MAP_DECLARATION_KINDS))
            diagnostics.error(declaration.span, f"Invalid bpf map type: {declaration.kind}", hints=(hint,))
            continue
        if not 1 <= declaration.entries <= schema.MAX_MAP_ENTRIES:
            diagnostics.error(declaration.span, f"A map holds from 1 to {schema.MAX_MAP_ENTRIES} entries")
        info = resolution.maps.get(declaration.name)
        if info is None or isinstance(info.value, Unknown):
            continue
        per_cpu = isinstance(info.value, Aggregate)
        if per_cpu != (declaration.kind in PER_CPU_DECLARATIONS):
            message = (
                f"Incompatible map types. Type from declaration: {declaration.kind}. "
                f"Type from value/key type: {'percpuhash' if per_cpu else 'hash'}"
            )
            first = info.first_access.span  # bpftrace points at the name only
            diagnostics.error(Span(first.line, first.col, first.line, first.col + len(declaration.name)), message)


def _contexts(probe: ast.Probe, targets: ProbeTargets) -> list[tuple[str, ...]]:
    """The context builtins each attach point of `probe` offers."""
    return [PROVIDERS[targets[point].provider].context for point in probe.attach_points if point in targets]


def _check_config(item: ast.ConfigItem, diagnostics: Diagnostics) -> None:
    if item.name not in CONFIG_SETTINGS:
        diagnostics.error(item.span, f"{item.name}: not a known configuration option")
        return
    expected = CONFIG_SETTINGS[item.name]
    if expected is None:
        diagnostics.error(item.span, f"config setting '{item.name}' is not supported yet")
    elif type(item.value) is not expected or (expected is int and item.value <= 0):
        diagnostics.error(item.span, f"Invalid type for {item.name}. Type: {type(item.value).__name__}")
    elif item.name == "missing_probes" and item.value not in schema.MISSING_PROBES:
        diagnostics.error(item.span, f"Invalid value for missing_probes: {item.value} (error, warn or ignore)")
    elif item.name == "max_map_keys" and item.value > schema.MAX_MAP_ENTRIES:
        diagnostics.error(item.span, f"max_map_keys is at most {schema.MAX_MAP_ENTRIES}")


class _Checker(ast.Visitor):
    def __init__(
        self, resolution: Resolution, contexts: list[tuple[str, ...]], diagnostics: Diagnostics, unsafe: bool
    ) -> None:
        self.unsafe = unsafe
        self.types = resolution.types
        self.maps = resolution.maps
        self.resolution = resolution
        self.contexts = contexts
        self.diagnostics = diagnostics
        self.loop_depth = 0
        self.options: dict[str, OptionSpec] = {}  # getopt() names → their first use
        self.max_strlen = CONFIG_DEFAULTS["max_strlen"]  # config max_strlen: the longest string, NUL included

    def visit_String(self, node: ast.String) -> None:
        if len(node.value) + 1 > self.max_strlen:
            text = node.value.decode("utf-8", "replace")
            self.error(node, f"String is too long (over {self.max_strlen} bytes): {text}")

    def error(self, node: ast.Node, message: str, **details) -> None:
        self.diagnostics.error(node.span, message, **details)

    def not_supported(self, node: ast.Node, what: str) -> None:
        self.error(node, f"{what} is not supported yet")

    def type_of(self, node: ast.Node) -> Type:
        return self.types.get(node, Unknown())

    # Statements

    def check_probe(self, probe: ast.Probe) -> None:
        self.probe = probe
        self.targets_of_probe = self.resolution.targets_of.get(probe, ())
        if probe.predicate is not None:
            self.visit(probe.predicate)
            predicate = self.type_of(probe.predicate)
            if not isinstance(predicate, (Int, Bool, Pointer, Unknown)):
                self.error(probe.predicate, f"Invalid type for predicate: {predicate}")
        for statement in probe.body.statements:
            self.visit(statement)

    def visit_Block(self, node: ast.Block) -> None:
        for statement in node.statements:
            self.visit(statement)

    def visit_ExprStatement(self, node: ast.ExprStatement) -> None:
        self.visit(node.expr)

    def visit_Assignment(self, node: ast.Assignment) -> None:
        target, value = node.target, node.value
        if isinstance(target, ast.Map):
            self._check_map_access(target)
            if _is_aggregation(value):
                self._check_call(value)
            elif isinstance(value, ast.Map) and isinstance(self.maps[value.name].value, Aggregate):
                self._check_map_access(value)
                self._aggregate_copied(node, value)
                return
            else:
                self.visit(value)
            self._check_map_value(node, target, value)
        elif isinstance(target, ast.Variable):
            self.visit(value)
            binding = self.resolution.bindings.get(target)
            if binding is not None:
                self._check_variable_value(node, binding, value)
        else:
            self.visit(value)

    def visit_Let(self, node: ast.Let) -> None:
        if node.value is not None:
            self.visit(node.value)
        if node in self.resolution.redeclared:
            initial = self.resolution.bindings[node.variable].declaration
            self.diagnostics.error(
                _declaration_span(node),
                f"Variable {node.variable.name} was already declared. Variable shadowing is not allowed.",
                context=(Context(_declaration_span(initial), "This is the initial declaration."),),
            )
            return
        binding = self.resolution.bindings[node.variable]
        declared = type_of_spec(node.type, self.resolution.types) if node.type is not None else None
        if node.type is not None and declared is None:
            self._unknown_type(node.type)
        elif isinstance(declared, (Array, Struct)):
            self.not_supported(node.type, f"A variable of type '{declared}'")
        elif node.value is not None:
            self._check_variable_value(node, binding, node.value)
        elif isinstance(binding.type, Unknown):
            self.diagnostics.warning(_declaration_span(node), f"Variable {node.variable.name} was never assigned to.")

    def visit_Jump(self, node: ast.Jump) -> None:
        if node.kind != "return" and self.loop_depth == 0:
            self.error(node, f"'{node.kind}' statement is not allowed in a probe")

    def visit_If(self, node: ast.If) -> None:
        self._check_condition(node.condition)
        self.visit(node.then)
        if node.otherwise is not None:
            self.visit(node.otherwise)

    def visit_Unroll(self, node: ast.Unroll) -> None:
        count = constant_value(node.count)
        if count is None:
            self.error(node.count, "unroll() count must be an integer literal")
        elif count > MAX_UNROLL:
            self.error(node, f"unroll maximum value is {MAX_UNROLL}")
        elif count < 1:
            self.error(node, "unroll minimum value is 1")
        self.visit(node.body)

    def visit_While(self, node: ast.While) -> None:
        self.diagnostics.warning(node.span, "While loops are deprecated and may be removed in the future.")
        self._check_condition(node.condition)
        self._loop_body(node.body)

    def visit_ForRange(self, node: ast.ForRange) -> None:
        for bound in (node.start, node.end):
            self.visit(bound)
            if not isinstance(self.type_of(bound), (Int, Unknown)):
                self.error(bound, f"Loop range requires an integer, found {self.type_of(bound)}")
        self._loop_body(node.body)

    def visit_ForMap(self, node: ast.ForMap) -> None:
        info = self.maps[node.map.name]
        if node.map.keys:
            self.error(node.map, f"for-loops iterate over a whole map, e.g. `for ($kv : {node.map.name})`")
        elif info.keyed is None:
            self.error(node.map, f"Undefined map: {node.map.name}")
        elif not info.keyed:
            self.error(node.map, "for-loops over a map without keys are not supported yet")
        elif isinstance(info.value, Aggregate):
            self.not_supported(node.map, f"Iterating over a map of {info.value}")
        self._loop_body(node.body)

    def _loop_body(self, body: ast.Block) -> None:
        self.loop_depth += 1
        self.visit(body)
        self.loop_depth -= 1

    def _check_condition(self, condition: ast.Node) -> None:
        self.visit(condition)
        t = self.type_of(condition)
        if not isinstance(t, (Int, Bool, Pointer, Unknown)):
            self.error(condition, f"Invalid condition: {t}")

    # Expressions

    def visit_Builtin(self, node: ast.Builtin) -> None:
        builtin = BUILTIN_VARIABLES.get(node.name)
        if node.name == "args":
            self._check_args(node)
        elif node.name == "func":
            self._check_func(node)
        elif builtin is None and isinstance(self.type_of(node), Enum):
            return  # a kernel enum's enumerator
        elif builtin is None:
            self.error(node, f"Unknown identifier: '{node.name}'")
        elif builtin.context and not all(builtin.context in context for context in self.contexts):
            self.error(node, CONTEXT_ERRORS[builtin.context].format(name=node.name))

    def _check_func(self, node: ast.Builtin) -> None:
        for target in self.targets_of_probe:
            if target.provider not in FUNC_PROVIDERS:
                self.error(node, f"The func builtin can not be used with '{target.provider}' probes")
                return
            if target.wildcard and target.provider in ("uretprobe", "kretprobe"):
                self.not_supported(node, f"func in a {target.provider} with wildcards")
                return

    def _check_args(self, node: ast.Builtin) -> None:
        for attach_point in self.probe.attach_points:
            layout = self.resolution.args.get(attach_point)
            if isinstance(layout, str):
                self.error(node, layout)
                return

    def visit_Variable(self, node: ast.Variable) -> None:
        binding = self.resolution.bindings.get(node)
        if binding is None:
            self.error(node, f"Undefined or undeclared variable: {node.name}")
        elif isinstance(binding.type, Unknown) and not binding.fixed:  # fixed: its `let` reports the type
            self.error(node, "Could not resolve the type of this variable")

    def visit_Positional(self, node: ast.Positional) -> None:
        if node.index == 0:
            self.error(node, "$0 is not a positional parameter: they start at $1")

    def visit_Map(self, node: ast.Map) -> None:
        self._check_map_access(node)
        value = self.maps[node.name].value
        if isinstance(value, Aggregate) and not value.readable:
            self.not_supported(node, f"Reading the value of a {value} map")

    def visit_Call(self, node: ast.Call) -> None:
        function = FUNCTIONS.get(node.name)
        if function is not None and function.aggregation:
            self.error(node, f"{node.name}() must be assigned directly to a map")
            return
        self._check_call(node)

    def visit_Unop(self, node: ast.Unop) -> None:
        self.visit(node.operand)
        operand = self.type_of(node.operand)
        if isinstance(operand, Unknown):
            return
        if node.op == "*" and isinstance(operand, Pointer):
            if storage.in_register(operand.target) or isinstance(operand.target, Struct):
                return  # a scalar read from where the pointer points, or a struct to take fields of
            self.not_supported(node, f"The '*' operator on '{operand}'")
        if node.op == "&" and isinstance(self.type_of(node), Pointer):
            return  # &$x of an integer, bool or pointer variable: the address of its slot
        if node.op == "*" and isinstance(operand, Int):
            return  # an address: the u64 there, in kernel memory (as bpftrace reads it)
        if node.op == "*" and not isinstance(operand, Pointer):
            self.error(node, f"Can not dereference type '{operand}': it is not a pointer")
        elif node.op in ("*", "&"):
            self.not_supported(node, f"The '{node.op}' operator on '{operand}'")
        elif node.op == "!" and not isinstance(operand, (Int, Bool, Pointer)):
            self.error(node, f"The ! operator can not be used on expressions of type '{operand}'")
        elif node.op in ("-", "~") and not isinstance(operand, (Int, Bool)):
            self.error(node, f"The {node.op} operator can not be used on expressions of type '{operand}'")

    def visit_Binop(self, node: ast.Binop) -> None:
        self.visit(node.left)
        self.visit(node.right)
        if fold_overflows(node):
            self.error(node, "unable to fold literals due to overflow or underflow")
            return
        left, right = self.type_of(node.left), self.type_of(node.right)
        if isinstance(left, Unknown) or isinstance(right, Unknown):
            return  # already reported where the operand is
        if isinstance(left, (String, Tuple, Record, Array)) and node.op in ("==", "!=") and unify(left, right) is not None:
            return
        if isinstance(left, String) and isinstance(right, String):
            self.error(node, f"The {node.op} operator can not be used on expressions of types {left}, {right}")
            return
        if node.op in COMPARISONS and isinstance(left, (Int, Pointer)) and isinstance(right, (Int, Pointer)):
            return  # an address compared with another, or with a number (`curtask != 0`)
        if not isinstance(left, (Int, Bool)) or not isinstance(right, (Int, Bool)):
            context = (Context(node.left.span, f"left ({left})"), Context(node.right.span, f"right ({right})"))
            message = f"Type mismatch for '{node.op}': comparing {left} with {right}"
            self.error(node, message, context=context)

    def visit_Conditional(self, node: ast.Conditional) -> None:
        self._check_condition(node.condition)
        if node.then is not node.condition:
            self.visit(node.then)
        self.visit(node.otherwise)
        then, otherwise = self.type_of(node.then), self.type_of(node.otherwise)
        if isinstance(then, Void) or isinstance(otherwise, Void):
            # bpftrace 0.27 refuses this with a syntax error; the docs show it as a statement.
            self.error(node, "Ternary operator must return a value: use if/else for statements")
        elif unify(then, otherwise) is None:
            self.error(node, f"Ternary operator must return the same type: have '{then}' and '{otherwise}'")

    def visit_Cast(self, node: ast.Cast) -> None:
        self.visit(node.operand)
        if node.type is None:
            return
        target = type_of_spec(node.type, self.resolution.types)
        operand = self.type_of(node.operand)
        if target is None and node.type.struct_kind == "enum":
            self.diagnostics.error(_cast_span(node), f"Unknown enum: {node.type.name}")
        elif target is None:
            self._unknown_type(node.type)
        elif isinstance(target, Pointer) and isinstance(operand, (Int, Pointer, Unknown)):
            if isinstance(target.target, Struct) and self.resolution.struct_of(target) is None:
                self.error(node.type, f"Unknown struct/union: '{target.target}' (not in the kernel's BTF)")
        elif isinstance(target, Array) or isinstance(operand, Array):
            self._check_array_cast(node, operand, target)
        elif isinstance(target, Enum) and constant_value(node.operand) is not None and (
            constant_value(node.operand) not in {value for _, value in target.enumerators}
        ):
            message = f"Enum: {target.name} doesn't contain a variant value of {constant_value(node.operand)}"
            self.diagnostics.error(_cast_span(node), message)
        elif isinstance(target, (Pointer, Struct)):
            self.not_supported(node, f"Casting to '{target}'")
        elif isinstance(target, (Int, Bool)) and not isinstance(operand, (Int, Bool, Pointer, Unknown)):
            self._cannot_cast(node, operand, target)
        elif isinstance(target, String) and not isinstance(operand, (String, Unknown)):
            self._cannot_cast(node, operand, target)

    def _cannot_cast(self, node: ast.Cast, operand: Type, target: Type) -> None:
        self.diagnostics.error(_cast_span(node), f'Cannot cast from "{operand}" to "{target}"')

    def _check_array_cast(self, node: ast.Cast, operand: Type, target: Type) -> None:
        """An integer reinterpreted as an array of integers or bools of the same size, and back."""
        if isinstance(operand, Unknown):
            return
        array = target if isinstance(target, Array) else operand
        if not isinstance(array.element, (Int, Bool)):
            self.not_supported(node, f"Casting to '{target}'")
            return
        other = operand if array is target else target
        literal = array is target and constant_value(node.operand) is not None and storage.sizeof(array) <= 8
        if not isinstance(other, (Int, Bool)) or not literal and storage.sizeof(other) != storage.sizeof(array):
            self._cannot_cast(node, operand, target)

    def _unknown_type(self, spec: ast.TypeSpec) -> None:
        if spec.struct_kind == "enum" and not spec.pointer_depth and spec.array_length is None:
            self.error(spec, f"Unknown enum: {spec.name}")
        elif spec.struct_kind:
            self.not_supported(spec, f"The type '{spec.struct_kind} {spec.name}'")
        else:
            self.error(spec, f'Cannot resolve unknown type "{spec.name}"')

    def visit_Field(self, node: ast.Field) -> None:
        self.visit(node.operand)
        operand = self.type_of(node.operand)
        if isinstance(operand, Struct) or isinstance(operand, Pointer) and isinstance(operand.target, Struct):
            self._check_struct_field(node, operand)
            return
        if isinstance(operand, Unknown) or not isinstance(self.type_of(node), Unknown):
            return
        if isinstance(operand, Tuple) and node.name.isdigit():
            count = len(operand.elements)
            self.error(node, f"Invalid tuple index: {node.name}. Found {count} elements in tuple.")
        elif isinstance(operand, Record):
            self.error(node, f"Record does not contain a field named '{node.name}'")
        else:
            self.error(node, f"Can not access field '{node.name}' on expression of type '{operand}'")

    def _check_struct_field(self, node: ast.Field, operand: Type) -> None:
        struct = operand.target if isinstance(operand, Pointer) else operand
        layout = self.resolution.struct_of(operand)
        if layout is None:
            self.error(node.operand, f"Unknown struct/union: '{struct}' (not in the kernel's BTF)")
            return
        is_args = isinstance(node.operand, ast.Builtin) and node.operand.name == "args"
        if isinstance(operand, Struct) and node.arrow and not is_args:  # args->x: the older spelling
            self.error(node, f"Can not access field '{node.name}' on type '{operand}'. Try using '.'")
            return
        field = layout.fields.get(node.name)
        if field is None:
            self.error(node, f"Struct/union of type '{struct}' does not contain a field named '{node.name}'")
        elif field.type is None:
            self.not_supported(node, f"Reading the field '{node.name}'")
        elif isinstance(node.operand, ast.Builtin) and node.operand.name == "args":
            self._check_args_field_agrees(node, field)

    def _check_args_field_agrees(self, node: ast.Field, field) -> None:
        """A probe with several tracepoints reads `args.x` from each: x must be there, with one type."""
        for attach_point in self.probe.attach_points:
            layout = self.resolution.args.get(attach_point)
            other = layout.fields.get(node.name) if not isinstance(layout, str) and layout else None
            if other is None or other.type != field.type:
                struct = layout.type if not isinstance(layout, str) and layout else "args"
                self.error(node, f"Struct/union of type '{struct}' does not contain a field named '{node.name}'")
                return

    def visit_Index(self, node: ast.Index) -> None:
        self.visit(node.operand)
        self.visit(node.index)
        operand = self.type_of(node.operand)
        if isinstance(operand, Tuple):
            position = constant_value(node.index)
            if position is None:
                self.error(node.index, "Tuple index must be an integer literal")
            elif not 0 <= position < len(operand.elements):
                count = len(operand.elements)
                self.error(node, f"Invalid tuple index: {position}. Found {count} elements in tuple.")
        elif _indexes_memory(node, operand, self.resolution) or isinstance(operand, (Array, String)):
            position = constant_value(node.index)
            length = operand.length if isinstance(operand, Array) else getattr(operand, "size", None)
            if not isinstance(self.type_of(node.index), (Int, Unknown)):
                self.error(node.index, f"The index must be an integer ({self.type_of(node.index)} provided)")
            elif length is not None and position is not None and not 0 <= position < length:
                self.error(node, f"the index {position} is out of bounds for array of size {length}")
        elif not isinstance(operand, Unknown):
            self.not_supported(node, f"Indexing a value of type '{operand}'")

    def visit_Tuple(self, node: ast.Tuple) -> None:
        if not node.elements:
            self.error(node, "An empty tuple has no value")
        for element in node.elements:
            self.visit(element)
            self._check_storable(element, "a tuple")

    def visit_Record(self, node: ast.Record) -> None:
        seen = set()
        for name, value in zip(node.names, node.values):
            if name in seen:
                self.error(node, f"Record field '{name}' appears more than once")
            seen.add(name)
            self.visit(value)
            self._check_storable(value, "a record")

    def visit_Increment(self, node: ast.Increment) -> None:
        target = node.target
        if not isinstance(target, (ast.Variable, ast.Map)):
            self.error(node, "syntax: increment/decrement requires a variable or map")
            return
        self.visit(target)
        t = self.type_of(target)
        if not isinstance(t, (Int, Unknown)):
            name = target.name
            what = "variable" if isinstance(target, ast.Variable) else "map"
            self.error(
                node,
                f"Type mismatch for {name}: trying to assign value of type 'uint64' when {what} already has a type '{t}'",
            )

    def visit_Sizeof(self, node: ast.Sizeof) -> None:
        if isinstance(node.operand, ast.TypeSpec):
            named = type_of_spec(node.operand, self.resolution.types)
            if named is None:
                self._unknown_type(node.operand)
            elif isinstance(named, Struct) and self.resolution.struct_of(named) is None:
                self.error(node.operand, f"Unknown struct/union: '{named}' (not in the kernel's BTF)")
            elif isinstance(named, Array) and isinstance(named.element, Struct):
                self.not_supported(node, f"sizeof({named})")
        else:
            self.visit(node.operand)

    def visit_Offsetof(self, node: ast.Offsetof) -> None:
        if offset_of(node, self.resolution) is None:
            named = type_of_spec(node.type, self.resolution.types)
            if not isinstance(named, Struct) or self.resolution.struct_of(named) is None:
                self.error(node.type, f"Unknown struct/union: '{named or node.type.name}' (not in the kernel's BTF)")
            else:
                self.error(node, f"'{named}' has no field {'.'.join(node.path)}")

    def visit_BlockExpr(self, node: ast.BlockExpr) -> None:
        for statement in node.statements:
            self.visit(statement)
        if node.value is not None:
            self.visit(node.value)

    # Calls

    def _check_call(self, node: ast.Call) -> None:

        if node.name in BUILTIN_VARIABLES and node.name not in FUNCTIONS:
            self._check_builtin_call(node)  # its argument names a mode, not a value
            return
        function = FUNCTIONS.get(node.name)
        if node.name == "print" and node.args and isinstance(node.args[0], ast.Tuple) and not node.args[0].elements:
            self.error(node, "none type passed to print() is not printable")  # bpftrace's words for print(())
            return
        takes_map = function is not None and (function.map_argument or node.name == "print")
        for position, arg in enumerate(node.args):
            if not (position == 0 and takes_map and isinstance(arg, ast.Map)):
                self.visit(arg)
        if function is None:
            if node.name in NOT_YET_FUNCTIONS:
                self.not_supported(node, f"The function '{node.name}()'")
            else:
                self.error(node, f"Unknown function: '{node.name}'")
            return
        if not function.min_args <= len(node.args) <= function.max_args:
            self.error(node, arity_message(node.name, function, len(node.args)))
            return
        if function.unsafe and not self.unsafe:
            self.error(node, f"{node.name}() is an unsafe function being used in safe mode",
                       hints=("compile with --unsafe (and run the bundle with bpfrun --unsafe)",))  # fmt: skip
            return
        if function.map_argument and not isinstance(node.args[0], ast.Map):
            self.error(node.args[0], f"{node.name}() expects a map argument")
            return
        check_arguments = _ARGUMENT_CHECKS.get(node.name)
        if check_arguments is not None:
            check_arguments(self, node)

    def _check_builtin_call(self, node: ast.Call) -> None:
        """`nsecs(boot)`, `pid(curr_ns)`: the no-argument and default forms were desugared."""
        if node.name in ("kstack", "ustack"):
            self._check_stack_call(node)
            return
        modes = {"nsecs": NSECS_CLOCKS, "pid": PID_NAMESPACES, "tid": PID_NAMESPACES}.get(node.name)
        if modes is None or len(node.args) != 1:
            self.error(node, f"{node.name}() takes no arguments ({len(node.args)} provided)")
            return
        (mode,) = node.args
        if not isinstance(mode, ast.Builtin) or mode.name not in modes:
            what = "timestamp mode" if node.name == "nsecs" else "PID namespace"
            self.error(mode, f"Invalid {what}: {mode.name if isinstance(mode, ast.Builtin) else '?'}")
        elif node.name == "nsecs" and mode.name == "sw_tai":
            self.not_supported(node, f"{node.name}({mode.name})")

    def _check_stack_call(self, node: ast.Call) -> None:
        """kstack(mode), kstack(depth), kstack(mode, depth)."""
        if len(node.args) > 2:
            self.error(node, f"{node.name}() takes up to two arguments ({len(node.args)} provided)")
            return
        *mode, depth = node.args
        if not mode and isinstance(depth, ast.Builtin):
            mode, depth = [depth], None
        if mode and (not isinstance(mode[0], ast.Builtin) or mode[0].name not in STACK_MODES):
            self.error(mode[0], f"{node.name}() expects a stack mode ({', '.join(STACK_MODES)})")
        elif depth is not None and not (isinstance(depth, ast.Integer) and 1 <= depth.value <= MAX_STACK_DEPTH):
            self.error(depth, f"{node.name}() expects an integer depth from 1 to {MAX_STACK_DEPTH}")

    def _integer_argument(self, node: ast.Call) -> None:
        t = self.type_of(node.args[0])
        if isinstance(t, (Int, Bool, Unknown)):
            return
        if node.name in ("hist", "lhist"):  # bpftrace words these two differently
            self.error(node, f"{node.name}() only supports int arguments ({_kind_name(t)} provided)")
        else:
            self.error(node, f"{node.name}() only supports integer arguments ({t} provided)")

    def _check_aggregation(self, node: ast.Call) -> None:
        if node.args:
            self._integer_argument(node)

    def _check_hist(self, node: ast.Call) -> None:
        self._integer_argument(node)
        if len(node.args) == 2:
            bits = constant_value(node.args[1])
            if bits is None:
                self.error(node, "hist: bits must be an integer literal")
            elif not 0 <= bits <= HIST_MAX_BITS:
                self.error(node, f"hist: bits {bits} must be 0..{HIST_MAX_BITS}")

    def _check_lhist(self, node: ast.Call) -> None:
        self._integer_argument(node)
        values = []
        for name, arg in zip(("min", "max", "step"), node.args[1:]):
            value = constant_value(arg)
            if value is None or value < 0:
                self.error(node, f"lhist: invalid {name} value (must be non-negative literal)")
                return
            values.append(value)
        low, high, step = values
        if step < 1:
            self.error(node, f"lhist() step must be >= 1 ({step} provided)")
        elif low >= high:
            self.error(node, f"lhist() min must be less than max (provided min {low} and max {high})")
        elif (high - low) // step > 1000:
            self.error(
                node, f"lhist() too many buckets, maximum is 1000 ((max - min) / step is {(high - low) // step})"
            )

    def _check_getopt(self, node: ast.Call) -> None:
        """getopt("NAME"[, default[, description]]): a literal name, default and description (for
        the user: bpfrun lists the options a bundle takes), the default the same everywhere."""
        name, default = node.args[0], (node.args[1] if len(node.args) > 1 else None)
        if len(node.args) == 3 and not isinstance(node.args[2], ast.String):
            self.error(node.args[2], "getopt() expects a string literal as the option's description")
            return
        if not isinstance(name, ast.String) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*", name.value.decode("latin-1")):
            self.error(name, "getopt() expects an option name: a string literal of letters, digits, '_' and '-'")
            return
        option = option_of(node)
        if default is not None and option is None:
            self.error(default, "getopt() expects a literal default: an integer, a string or a bool")
            return
        previous = self.options.setdefault(option.name, option)
        if previous != option:
            self.error(
                node,
                f"Command line option '{option.name}' needs to have the same default value in all places it is "
                f"used. Previous default value: {previous.default}",
            )

    def _check_integer_operand(self, node: ast.Call) -> None:
        """bswap(), strerror(), signal_name(), syscall_name(), cgroup_path(): of an integer."""
        if not isinstance(self.type_of(node.args[0]), (Int, Unknown)):
            self.error(node.args[0], f"{node.name}() expects an integer ({self.type_of(node.args[0])} provided)")

    def _check_static_assert(self, node: ast.Call) -> None:
        """static_assert(condition, "message"): the condition is decided here, at compile time."""
        condition, message = node.args
        if not isinstance(message, ast.String):
            self.error(message, f"{node.name}() expects a string literal message")
            return
        if node.name == "assert":
            self.error(node, "assert() is a statement: it gives no value")
            return
        value = comptime_value(condition)
        if value is None:
            self.error(node, "Unable to resolve comptime expression")
        elif not value:
            self.error(node, message.value.decode("utf-8", "replace"))

    def _check_exit(self, node: ast.Call) -> None:
        if node.args:
            t = self.type_of(node.args[0])
            if not isinstance(t, (Int, Bool, Unknown)):
                self.error(node, f"exit() only supports int arguments ({_kind_name(t)} provided)")
        if self.loop_depth:
            self.error(node, "exit() is not allowed inside a loop")

    def _check_find(self, node: ast.Call) -> None:
        """find(@m, key, $v): a map of plain values with keys, and a variable to set."""
        target, _, variable = node.args
        if isinstance(self.maps[target.name].value, Aggregate):
            self.not_supported(node, f"find() on a {self.maps[target.name].value} map")
        elif not isinstance(variable, ast.Variable):
            self.error(variable, "find() sets a variable: its third argument must be one, e.g. find(@m, key, $value)")
        else:
            self._check_keyed_map_argument(node)

    def _check_keyed_map_argument(self, node: ast.Call) -> None:
        target = node.args[0]
        info = self.maps[target.name]
        if isinstance(info.value, Aggregate) and info.value.kind in ("hist", "lhist"):
            self.not_supported(node, f"{node.name}() on a {info.value} map")
            return
        if len(node.args) == 1:
            if info.keyed:
                self.error(node, f"{node.name}() of a map with keys needs the key: {node.name}({target.name}, key)")
            return
        if not info.keyed:
            self.error(node, f"call to {node.name}() expects a map with explicit keys (non-scalar map)")
            return
        self._check_key(target, self.type_of(node.args[1]), node.args[1])

    def _check_whole_map(self, node: ast.Call) -> None:
        target = node.args[0]
        if target.keys:
            self.error(target, f"{node.name}() expects a map without a key, e.g. {node.name}({target.name})")
        elif self.maps[target.name].keyed is None:
            self.error(target, f"Undefined map: {target.name}")

    def _check_len(self, node: ast.Call) -> None:
        self._check_whole_map(node)
        info = self.maps[node.args[0].name]
        if info.keyed is False:
            self.error(node, "call to len() expects a map with explicit keys (non-scalar map)")
        elif isinstance(info.value, Aggregate) and info.value.kind in ("hist", "lhist"):
            self.not_supported(node, f"len() of a {info.value} map")

    def _check_print(self, node: ast.Call) -> None:
        target = node.args[0]
        if isinstance(target, ast.Map) and not target.keys:
            self._check_whole_map(node)
            for extra in node.args[1:]:
                self.visit(extra)
                if constant_value(extra) is None or constant_value(extra) < 0:
                    self.error(extra, "print() top and div must be non-negative integer literals")
            return
        if len(node.args) > 1:
            self.error(node, f"Non-map print() only takes 1 argument, {len(node.args)} found")
            return
        if isinstance(target, ast.Map):
            self.visit(target)
        t = self.type_of(target)
        if isinstance(t, Aggregate) and not t.readable:
            self.not_supported(target, f"print() of one {t} value")
        elif isinstance(t, Void):
            self.error(target, "print() of a value that has no type")

    def _check_printf(self, node: ast.Call) -> None:
        """printf(), and system(), cat(), warnf() and errorf() with printf's format."""
        format_node, *args = node.args
        if not isinstance(format_node, ast.String):
            self.error(
                node, f"{node.name}() expects a string literal ({_kind_name(self.type_of(format_node))} provided)"
            )
            return
        specs = conversions(format_node.value.decode("utf-8", "surrogateescape"))
        unsupported = [spec.conversion for spec in specs if spec.conversion in UNSUPPORTED_CONVERSIONS]
        if unsupported:
            self.error(node, f"unsupported format specifier: {unsupported[0]}")
            return
        too_wide = [spec for spec in specs if max(spec.width or 0, spec.precision or 0) > MAX_WIDTH]
        if too_wide:
            self.error(node, f"{node.name}() width and precision are limited to {MAX_WIDTH}")
            return
        if len(args) != len(specs):
            which = "not enough" if len(args) < len(specs) else "too many"
            self.error(node, f"{which} arguments for format string ({len(args)} supplied, {len(specs)} expected)")
            return
        for spec, arg in zip(specs, args):
            t = self.type_of(arg)
            if isinstance(t, (Unknown, Int, Bool, Pointer)):
                continue
            if isinstance(t, String) and spec.conversion not in INTEGER_CONVERSIONS:
                continue
            if isinstance(t, Formatted) and spec.conversion in "sr":
                continue
            if isinstance(t, (Tuple, Record, Timestamp, Lookup, Stack, Symbol)) and spec.conversion == "s":
                continue
            self.error(node, f"unsupported format specifier for type '{t}': {spec.conversion}")

    def _check_time(self, node: ast.Call) -> None:
        if node.args and not isinstance(node.args[0], ast.String):
            self.error(node, f"time() expects a string literal ({_kind_name(self.type_of(node.args[0]))} provided)")

    def _check_strftime(self, node: ast.Call) -> None:
        format_node, timestamp = node.args
        if not isinstance(format_node, ast.String):
            self.error(node, f"strftime() expects a string literal ({_kind_name(self.type_of(format_node))} provided)")
        elif not isinstance(self.type_of(timestamp), (Int, Bool, Unknown)):
            self.error(timestamp, f"strftime() expects an integer timestamp ({self.type_of(timestamp)} provided)")
        elif (constant_value(timestamp) or 0) < 0:
            self.error(timestamp, "strftime() timestamps must be non-negative")

    def _check_strings(self, node: ast.Call) -> None:
        strings = node.args[:2] if node.name != "strlen" else node.args[:1]
        for arg in strings:
            if not isinstance(self.type_of(arg), (String, Unknown)):
                self.error(arg, f"{node.name}() expects strings ({self.type_of(arg)} provided)")
        if node.name == "strncmp" and not isinstance(self.type_of(node.args[2]), (Int, Bool, Unknown)):
            self.error(node.args[2], f"strncmp() expects an integer length ({self.type_of(node.args[2])} provided)")
        sizes = [t.size for t in map(self.type_of, node.args[:2]) if isinstance(t, String)]
        if node.name in ("strcontains", "strstr", "str_concat") and len(sizes) == 2 and sizes[0] * sizes[1] > MAX_SEARCH_BYTES:
            # The search is straight-line code comparing every pair of bytes (no loop for the
            # verifier to bound): its size, and LLVM's time, grow with the product of the sizes.
            self.not_supported(node, f"{node.name}() of a {sizes[0]}-byte string and a {sizes[1]}-byte one")

    def _check_path(self, node: ast.Call) -> None:
        """path(p[, size]): a struct path pointer the kernel gives the probe (bpf_d_path)."""
        if any(target.provider not in PATH_PROVIDERS for target in self.targets_of_probe):
            allowed = ", ".join(f"'{provider}'" for provider in PATH_PROVIDERS)
            self.error(node, f"The path function can only be used with {allowed} probes")
        elif not isinstance(self.type_of(node.args[0]), (Pointer, Unknown)):
            self.error(node.args[0], f"path() expects a pointer to a struct path ({self.type_of(node.args[0])} provided)")
        elif len(node.args) == 2 and not 1 <= (constant_value(node.args[1]) or 0) <= STRING_READ_SIZE:
            self.error(node.args[1], f"path() expects a constant size from 1 to {STRING_READ_SIZE}")

    def _check_uaddr(self, node: ast.Call) -> None:
        """uaddr("NAME") in a probe with one uprobe (or uretprobe) attach point: NAME's address in
        the process the probe fired in."""
        name = node.args[0]
        providers = [target.provider for target in self.targets_of_probe]
        if not isinstance(name, ast.String) or not re.fullmatch(schema.FUNCTION_NAME, name.value.decode("utf-8", "replace")):
            self.error(node, "uaddr() expects a symbol's name as a string literal")
        elif any(provider not in ("uprobe", "uretprobe") for provider in providers):
            other = next(provider for provider in providers if provider not in ("uprobe", "uretprobe"))
            self.error(node, f'uaddr can not be used with "{other}" probes')
        elif len(providers) != 1 or self.targets_of_probe[0].wildcard:
            self.not_supported(node, "uaddr() in a probe of several attach points or a wildcard")

    def _check_kaddr(self, node: ast.Call) -> None:
        name = node.args[0]
        if not isinstance(name, ast.String) or not re.fullmatch(schema.FUNCTION_NAME, name.value.decode("utf-8", "replace")):
            self.error(node, "kaddr() expects a kernel symbol's name as a string literal")

    def _check_strcap(self, node: ast.Call) -> None:
        if not isinstance(self.type_of(node.args[0]), (String, Unknown)):
            self.error(node.args[0], f"strcap() expects a string ({self.type_of(node.args[0])} provided)")

    def _check_join(self, node: ast.Call) -> None:
        if not isinstance(self.type_of(node.args[0]), (Pointer, Int, Unknown)):
            self.error(node.args[0], f"join() expects an array of string pointers ({self.type_of(node.args[0])} provided)")
        elif len(node.args) == 2 and not isinstance(node.args[1], ast.String):
            self.error(node.args[1], "join() expects a string literal as its separator")

    def _check_bytes_source(self, node: ast.Call) -> None:
        """buf(x[, n]), macaddr(x): x a pointer, an address or a string; buf's n a constant."""
        source = self.type_of(node.args[0])
        if not isinstance(source, (Pointer, Int, String, Unknown)):
            self.error(node.args[0], f"{node.name}() reads a pointer, an address or a string ({source} provided)")
        elif node.name == "buf" and len(node.args) == 1 and not isinstance(source, String):
            self.error(node, "buf() of a pointer needs a length: buf(pointer, length)")
        elif node.name == "buf" and len(node.args) == 2:
            length = constant_value(node.args[1])
            if length is None and not isinstance(self.type_of(node.args[1]), (Int, Bool, Unknown)):
                self.error(node.args[1], f"buf() expects an integer length ({self.type_of(node.args[1])} provided)")
            elif length is not None and not 1 <= length <= MAX_BUFFER:
                self.error(node.args[1], f"buf() lengths go from 1 to {MAX_BUFFER}")

    def _check_ntop(self, node: ast.Call) -> None:
        """ntop(address) of an IPv4 address (an integer); ntop(family, address) with AF_INET (2)
        and an integer or a pointer to 4 bytes, AF_INET6 (10) and a pointer to 16."""
        address = self.type_of(node.args[-1])
        family = constant_value(node.args[0]) if len(node.args) == 2 else 2
        if family not in (2, 10):
            self.error(node.args[0], "ntop() expects a constant address family, AF_INET (2) or AF_INET6 (10)")
        elif isinstance(address, (Array, String)):  # pton()'s bytes, a u8[16] field: their length says the family
            expected = (4, 16) if len(node.args) == 1 else (4 if family == 2 else 16,)
            length = address.length if isinstance(address, Array) else address.size
            if isinstance(address, Array) and storage.sizeof(address.element) != 1 or length not in expected:
                self.error(node.args[-1], f"ntop() cannot read an address from a {address}")
        elif not isinstance(address, (Int, Pointer, Unknown)) or (family == 10 and isinstance(address, Int)):
            self.error(node.args[-1], f"ntop() cannot read an address from a {address}")

    def _check_pton(self, node: ast.Call) -> None:
        if address_bytes(node.args[0]) is None:
            self.error(node.args[0], "pton() expects a string literal, an IPv4 or IPv6 address")

    def _check_reg(self, node: ast.Call) -> None:
        (name,) = node.args
        if not isinstance(name, ast.String) or name.value.decode("utf-8", "replace") not in REGISTERS:
            self.error(node, f"reg() expects a register name: {', '.join(REGISTERS)}")
        elif not all(provider in REGISTER_PROVIDERS for provider in self._providers()):
            self.error(node, "reg() can only be used with kprobe, uprobe, usdt and perf event probes")

    def _providers(self) -> list[str]:
        return [target.provider for target in self.targets_of_probe]

    def _check_str(self, node: ast.Call) -> None:
        if isinstance(self.type_of(node), Unknown) and not isinstance(self.type_of(node.args[0]), Unknown):
            self.not_supported(node, f"str() of a {self.type_of(node.args[0])} (reading a string from memory)")
        elif len(node.args) == 2 and not isinstance(self.type_of(node.args[1]), (Int, Bool, Unknown)):
            self.error(node.args[1], f"str() expects an integer length ({self.type_of(node.args[1])} provided)")
        elif len(node.args) == 2 and parameter_offset(node.args[0]) is not None:
            self.not_supported(node.args[1], "str() of a parameter with a length")

    # Maps and variables

    def _check_map_access(self, node: ast.Map) -> None:
        for key in node.keys:
            self.visit(key)
        info = self.maps[node.name]
        if bool(node.keys) != info.keyed:
            self.error(node, _keyed_mismatch(node.name, keyed_access=bool(node.keys)))
            return
        if node.keys:
            key = self.type_of(node.keys[0]) if len(node.keys) == 1 else Tuple(tuple(map(self.type_of, node.keys)))
            self._check_key(node, key, node)

    def _check_key(self, target: ast.Map, key: Type, where: ast.Node) -> None:
        info = self.maps[target.name]
        if isinstance(key, Unknown) or isinstance(info.key, Unknown):
            return
        if unify(info.key, key) != info.key:
            self.error(
                where if where is not target else target,
                f"Argument mismatch for {target.name}: trying to access with arguments: "
                f"'{key}' when map expects arguments: '{info.key}'",
            )
            return
        if not _storable(key):
            self.error(where, f"{key} cannot be used as a map key")

    def _check_map_value(self, node: ast.Assignment, target: ast.Map, value_node: ast.Node) -> None:
        value = self.type_of(value_node)
        info: MapInfo = self.maps[target.name]
        if isinstance(value, Unknown):
            return
        if isinstance(value, Void):
            self.error(node, f"{_call_name(value_node)} returns no value to assign to {target.name}")
            return
        if _past_signed(value_node, info.value):
            self.error(
                node,
                f"Type mismatch for {target.name}: trying to assign value of type "
                f"'uint64' when map already has a value type '{info.value}'",
            )
            return
        if isinstance(value, Aggregate) and isinstance(info.value, Aggregate):
            compatible = value.kind == info.value.kind
        else:
            compatible = not isinstance(value, Aggregate) and not isinstance(info.value, Aggregate)
            compatible = compatible and unify(info.value, value) is not None
        if not compatible:
            # bpftrace points at an aggregation call itself, at other values the whole assignment.
            where = value_node if _is_aggregation(value_node) else node
            self.error(
                where,
                f"Type mismatch for {target.name}: trying to assign value of type "
                f"'{value}' when map already has a type '{info.value}'",
            )
        elif isinstance(value, Aggregate) and value.params != info.value.params:
            if value.kind == "hist":
                self.error(value_node, "Different bits in a single hist unsupported")
            else:
                self.error(value_node, "Different lhist bounds in a single map unsupported")
        elif not isinstance(value, Aggregate) and not _storable(value):
            self.not_supported(node, f"A map value of type '{value}'")

    def _check_variable_value(self, node: ast.Node, binding: Binding, value_node: ast.Node) -> None:
        value = self.type_of(value_node)
        if isinstance(value, Unknown):
            return
        if isinstance(value, Aggregate) and not value.readable:
            self.error(node, f"Value '{value}' cannot be assigned to a scratch variable.")
            return
        if isinstance(value, Void):
            self.error(node, f"{_call_name(value_node)} returns no value to assign to {binding.name}")
            return
        literal = constant_value(value_node)
        fixed_int = binding.fixed and isinstance(binding.type, Int)
        out_of_range = fixed_int and literal is not None and not fits(literal, binding.type)
        if (
            out_of_range
            or _past_signed(value_node, binding.type)
            or unify(binding.type, value) is None
            or (binding.fixed and _kind(value) != _kind(binding.type))
        ):
            self.error(
                node,
                f"Type mismatch for {binding.name}: trying to assign value of type "
                f"'{value}' when variable already has a type '{binding.type}'",
            )

    def _check_storable(self, node: ast.Node, container: str) -> None:
        t = self.type_of(node)
        if not isinstance(t, Unknown) and not _storable(t):
            self.error(node, f"A value of type '{t}' cannot be part of {container}")

    def _aggregate_copied(self, node: ast.Assignment, source: ast.Map) -> None:
        aggregate = self.maps[source.name].value
        example = _AGGREGATE_EXAMPLES.get(aggregate.kind, f"@y = {aggregate.kind}(...);")
        hints = ()
        if aggregate.readable:
            hints = (
                f"Add a cast to integer if you want the value of the aggregate, e.g. `@y = (int64){source.name};`.",
            )
        self.error(
            node,
            f"Map value '{aggregate}' cannot be assigned from one map to another. The function "
            f"that returns this type must be called directly e.g. `{example}`.",
            hints=hints,
        )


def _declaration_span(node: ast.Node) -> Span:
    """`let $x` without its type and value, as bpftrace points at a declaration."""
    if isinstance(node, ast.Let):
        return span_between(node.span, node.variable.span)
    return node.span


def _cast_span(node: ast.Cast) -> Span:
    """bpftrace points at a cast's parenthesised type."""
    spec = node.type.span
    return Span(node.span.line, node.span.col, spec.end_line, spec.end_col + 1)


def _is_aggregation(node: ast.Node) -> bool:
    return isinstance(node, ast.Call) and node.name in FUNCTIONS and FUNCTIONS[node.name].aggregation


def _call_name(node: ast.Node) -> str:
    return f"{node.name}()" if isinstance(node, ast.Call) else "this expression"


def _indexes_memory(node: ast.Index, operand: Type, resolution: Resolution) -> bool:
    """p[i] of a pointer to integers, pointers or structs, or a[i] of such an array field of a
    kernel struct: an element in memory."""
    element = resolution.types.get(node)
    if not isinstance(element, (Int, Pointer)) and resolution.struct_of(element) is None:
        return False
    if isinstance(operand, Pointer):
        return True
    return isinstance(operand, Array) and isinstance(node.operand, ast.Field) and (
        resolution.struct_of(resolution.types.get(node.operand.operand)) is not None
    )


def _storable(t: Type) -> bool:
    """Whether values of `t` can live in a map, a variable or an event."""
    if isinstance(t, (Int, Bool, String, Lookup, Pointer, Stack, Symbol, Formatted)):
        return True
    if isinstance(t, Array):
        return isinstance(t.element, (Int, Bool))
    if isinstance(t, Struct):  # a copy of a kernel struct, when bpftc can lay one out
        return t.held is not None
    if isinstance(t, Tuple):
        return all(map(_storable, t.elements))
    if isinstance(t, Record):
        return all(map(_storable, t.elements))
    return False


def _kind(t: Type) -> str:
    return type(t).__name__


def _kind_name(t: Type) -> str:
    """The coarse names bpftrace uses in some argument errors: 'int', 'string'..."""
    if isinstance(t, (Int, Bool)):
        return "int"
    if isinstance(t, String):
        return "string"
    return str(t)


def _keyed_mismatch(name: str, keyed_access: bool) -> str:
    if keyed_access:
        return (
            f"{name} used as a map with an explicit key (non-scalar map), "
            "previously used without an explicit key (scalar map)"
        )
    return (
        f"{name} used as a map without an explicit key (scalar map), "
        "previously used with an explicit key (non-scalar map)"
    )


_ARGUMENT_CHECKS = {
    "bswap": _Checker._check_integer_operand,
    "strerror": _Checker._check_integer_operand,
    "signal_name": _Checker._check_integer_operand,
    "syscall_name": _Checker._check_integer_operand,
    "cgroup_path": _Checker._check_integer_operand,
    "static_assert": _Checker._check_static_assert,
    "assert": _Checker._check_static_assert,  # a valid assert() is desugared: only its errors remain
    "getopt": _Checker._check_getopt,
    "sum": _Checker._check_aggregation,
    "min": _Checker._check_aggregation,
    "max": _Checker._check_aggregation,
    "avg": _Checker._check_aggregation,
    "stats": _Checker._check_aggregation,
    "hist": _Checker._check_hist,
    "lhist": _Checker._check_lhist,
    "exit": _Checker._check_exit,
    "delete": _Checker._check_keyed_map_argument,
    "has_key": _Checker._check_keyed_map_argument,
    "find": _Checker._check_find,
    "len": _Checker._check_len,
    "clear": _Checker._check_whole_map,
    "zero": _Checker._check_whole_map,
    "print": _Checker._check_print,
    "printf": _Checker._check_printf,
    "system": _Checker._check_printf,
    "cat": _Checker._check_printf,
    "warnf": _Checker._check_printf,
    "errorf": _Checker._check_printf,
    "time": _Checker._check_time,
    "strftime": _Checker._check_strftime,
    "str": _Checker._check_str,
    "reg": _Checker._check_reg,
    "join": _Checker._check_join,
    "strcap": _Checker._check_strcap,
    "kaddr": _Checker._check_kaddr,
    "uaddr": _Checker._check_uaddr,
    "path": _Checker._check_path,
    "buf": _Checker._check_bytes_source,
    "macaddr": _Checker._check_bytes_source,
    "ntop": _Checker._check_ntop,
    "pton": _Checker._check_pton,
    "strlen": _Checker._check_strings,
    "strcontains": _Checker._check_strings,
    "strstr": _Checker._check_strings,
    "strncmp": _Checker._check_strings,
    "str_concat": _Checker._check_strings,
}


INT64_MAX = (1 << 63) - 1


def _past_signed(value_node: ast.Node, target: Type) -> bool:
    """A literal past INT64_MAX (a uint64) into a variable or map that signed values made int64."""
    literal = constant_value(value_node)
    return literal is not None and literal > INT64_MAX and isinstance(target, Int) and target.signed


def comptime_value(node: ast.Node) -> int | None:
    """The value of a condition static_assert() can decide: literals, sizeof() of types, and
    arithmetic, comparisons and logic over them; None for anything known only at run time."""
    if isinstance(node, ast.Bool):
        return int(node.value)
    if isinstance(node, ast.Sizeof) and isinstance(node.operand, ast.TypeSpec):
        named = type_of_spec(node.operand)
        return storage.sizeof(named) if named is not None and not isinstance(named, Struct) else None
    if isinstance(node, ast.Unop) and node.op == "!":
        operand = comptime_value(node.operand)
        return None if operand is None else int(not operand)
    if isinstance(node, ast.Binop) and node.op in _COMPTIME_OPERATORS:
        left, right = comptime_value(node.left), comptime_value(node.right)
        if left is None or right is None:
            return None
        return int(_COMPTIME_OPERATORS[node.op](left, right))
    return constant_value(node)


_COMPTIME_OPERATORS = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "&&": lambda a, b: a and b, "||": lambda a, b: a or b,
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
}  # fmt: skip
