"""Resolve: infer the type of every expression, scratch variable and map.

Consumes the program (after desugar) and its probe targets; produces a `Resolution`: a `TypeMap`
keyed by node identity, one `MapInfo` per map and one `Binding` per scratch variable declaration.
Reports nothing: what cannot be typed gets UNKNOWN, and passes/check.py reports it with its span.

Inference is one pass per probe over a worklist. A probe is visited again when a type it read
grows later: a variable assigned a wider value further down (`$x = 1; ... $x = 1000` makes $x
an int16, as in bpftrace), or a map whose type another probe fixes. Types only grow (see
`types.unify`), so the worklist empties.

Rules, as bpftrace 0.27 shows them (`bpftrace -d types`): an integer literal, and an expression of
literals only, is the smallest signed type holding its value; other arithmetic is 64-bit, signed
for '-' or when a signed operand that is not a literal >= 0 takes part; comparisons and logic give
bool. A variable or map holds the unification of everything assigned to it; a map's key likewise.

Scratch variables are scoped by block: a variable first assigned (or declared with `let`) in a
block is not visible after it.
"""

from __future__ import annotations

import re

from bpftc import ast
from bpftc.builtins import ARGS_PROVIDERS_MESSAGE, BUILTIN_VARIABLES, FUNCTIONS, STRING_READ_SIZE
from bpftc.kernel import Field, KernelTypes, StructLayout
from bpftc.passes.probes import ProbeTargets
from bpftc.types import (
    BOOL,
    C_INT_NAMES,
    INT8,
    INT64,
    INT_NAMES,
    UINT8,
    UINT64,
    UNKNOWN,
    VOID,
    Aggregate,
    Array,
    Bool,
    Enum,
    Formatted,
    Int,
    Pointer,
    Record,
    Stack,
    String,
    Struct,
    Symbol,
    Timestamp,
    Tuple,
    Type,
    Unknown,
    fits,
    literal_type,
    unify,
)
from common.layout import MAX_STACK_DEPTH, STACK_MODES
from common.record import field, record
from common.schema import PARAMETER_STRING_SIZE, PROBE_NAME_SIZE, OptionSpec

TypeMap = dict[ast.Node, Type]

COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
LOGICAL = {"&&", "||"}
ARITHMETIC = {"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"}
_U64_MASK = (1 << 64) - 1
_MAX_ROUNDS = 1000  # types only grow, so the worklist empties long before this; a guard against bugs


@record
class Literals:
    """What the non-negative integer literals assigned to a variable or map need (see _join)."""

    only: bool = True  # nothing but such literals assigned so far
    largest: int = 0


@record
class MapInfo:
    name: str
    keyed: bool | None  # its first access had keys; None while only named whole (print(@m))
    first_access: ast.Map
    key: Type = UNKNOWN  # one key's type, or a Tuple for several
    value: Type = UNKNOWN
    deleted: bool = False  # delete() is called on it: its kernel map must allow deleting
    joined: Literals = field(default_factory=lambda: Literals())  # see _join


@record(eq=False)
class Binding:
    """One scratch variable: where it is declared and the type of everything assigned to it."""

    name: str
    declaration: ast.Node  # the Let, the first Assignment, or the loop that declares it
    type: Type = UNKNOWN
    fixed: bool = False  # `let $x: type`: assignments convert to this type
    joined: Literals = field(default_factory=lambda: Literals())  # see _join


@record
class Resolution:
    types: TypeMap = field(default_factory=dict)
    maps: dict[str, MapInfo] = field(default_factory=dict)
    bindings: dict[ast.Variable, Binding] = field(default_factory=dict)  # every use; missing: undefined
    declarations: dict[ast.Node, Binding] = field(default_factory=dict)  # Let, Assignment or loop → Binding
    redeclared: set[ast.Let] = field(default_factory=set)  # `let` of a variable already visible
    probe_names: dict[ast.Probe, tuple[str, ...]] = field(default_factory=dict)
    targets_of: dict[ast.Probe, tuple] = field(default_factory=dict)  # each probe's ProbeTargets
    wildcard_probes: set[ast.Probe] = field(default_factory=set)  # attach points bpfrun expands
    kernel: KernelTypes = field(default_factory=KernelTypes)  # struct layouts (bpftc/kernel.py)
    # Each tracepoint's `args` layout (or why it has none), by attach point, for the probes that read it.
    args: dict[ast.AttachPoint, StructLayout | str] = field(default_factory=dict)
    string_size: int = STRING_READ_SIZE  # str() of memory: config max_strlen, NUL included

    def struct_of(self, operand: Type) -> StructLayout | None:
        """The layout a field access on a value of type `operand` reads: a struct, or the struct a
        pointer points to (`.` dereferences pointers, as in bpftrace 0.25+)."""
        if isinstance(operand, Pointer):
            operand = operand.target
        if not isinstance(operand, Struct):
            return None
        return self.kernel.struct_layout(operand)

    def kernel_field(self, operand: Type, name: str) -> Field | None:
        layout = self.struct_of(operand)
        return layout.fields.get(name) if layout is not None else None


def resolve(program: ast.Program, targets: ProbeTargets, kernel: KernelTypes | None = None) -> Resolution:
    resolution = Resolution(kernel=kernel or KernelTypes())
    max_strlen = next((item.value for item in program.config if item.name == "max_strlen"), None)
    if type(max_strlen) is int and 1 < max_strlen <= STRING_READ_SIZE:  # passes/check.py reports others
        resolution.string_size = max_strlen
    for probe in program.probes:
        resolution.probe_names[probe] = tuple(targets[p].name for p in probe.attach_points if p in targets)
        resolution.targets_of[probe] = tuple(targets[p] for p in probe.attach_points if p in targets)
        if any(targets[p].wildcard for p in probe.attach_points if p in targets):
            resolution.wildcard_probes.add(probe)
        if _reads_args(probe):
            for attach_point in probe.attach_points:
                if attach_point in targets:
                    resolution.args[attach_point] = args_layout(targets[attach_point], resolution.kernel)
    readers: dict[str, set[ast.Probe]] = {}  # map name → probes that read its type
    pending = list(program.probes)
    while pending:
        _run_worklist(resolution, pending, readers)
        # A map that is read but never assigned reads as 0: an int64 map, as in bpftrace.
        unassigned = [name for name, info in resolution.maps.items() if isinstance(info.value, Unknown)]
        for name in unassigned:
            resolution.maps[name].value = INT64
        pending = [probe for probe in program.probes if any(probe in readers.get(name, ()) for name in unassigned)]
    return resolution


def function_name(target) -> str:
    """The function a kprobe, uprobe or fentry names (`vfs_read+8` names vfs_read)."""
    return target.target[-1].partition("+")[0] if target.target else ""


def _reads_args(probe: ast.Probe) -> bool:
    return any(isinstance(node, ast.Builtin) and node.name == "args" for node in ast.walk(probe))


def args_layout(target, kernel: KernelTypes) -> StructLayout | str:
    """The layout of `args` in a program attached to `target`, or why there is none."""
    if target.provider not in ("tracepoint", "rawtracepoint", "fentry", "fexit", "uprobe", "uretprobe"):
        return ARGS_PROVIDERS_MESSAGE.format(provider=target.provider)
    if target.provider == "rawtracepoint":
        return kernel.rawtracepoint_args(target.target[-1])
    if target.provider in ("fentry", "fexit") and target.target[0] == "vmlinux":
        return kernel.function_args(target.target[-1])
    if target.provider == "uprobe" and not target.wildcard and re.fullmatch(r"[A-Za-z_][\w.]*", target.target[1]):
        return kernel.uprobe_args(*target.target)
    if target.provider != "tracepoint":
        return f"The args builtin of {target.provider} probes is not supported yet"
    if target.wildcard:
        return "The args builtin of a tracepoint with wildcards is not supported yet"
    return kernel.tracepoint_args(*target.target)


def _run_worklist(resolution: Resolution, pending: list[ast.Probe], readers: dict[str, set[ast.Probe]]) -> None:
    """Type the pending probes, and again every probe that read a map whose type grew since."""
    pending = list(reversed(pending))
    queued = set(pending)
    rounds = 0
    while pending:
        rounds += 1
        assert rounds < _MAX_ROUNDS * (len(queued) + 1), "type inference does not converge"
        probe = pending.pop()
        queued.discard(probe)
        visitor = _Resolver(resolution, probe)
        visitor.visit_probe(probe)
        for name in visitor.read_maps:
            readers.setdefault(name, set()).add(probe)
        for name in visitor.grown_maps:
            for reader in readers.get(name, ()):
                if reader not in queued:
                    pending.insert(0, reader)
                    queued.add(reader)


def address_bytes(node: ast.Node) -> bytes | None:
    """pton()'s argument: the bytes of an IPv4 or IPv6 address literal, or None."""
    if not isinstance(node, ast.String):
        return None
    import socket  # only for pton(): the import is a few ms of every compile

    text = node.value.decode("ascii", "replace")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_pton(family, text)
        except OSError:
            continue
    return None


def constant_value(node: ast.Node) -> int | None:
    """The value of an integer expression made of literals only, computed as bpftrace would."""
    if isinstance(node, ast.Integer):
        return node.value
    if isinstance(node, ast.Cast) and node.type is None:  # a conversion passes/convert.py made
        return constant_value(node.operand)
    if isinstance(node, ast.Unop) and node.op in ("-", "~"):
        operand = constant_value(node.operand)
        if operand is None:
            return None
        if node.op == "-":
            return -operand
        return ~operand & _U64_MASK if operand >= 0 else ~operand  # bpftrace: ~0 is a uint64
    if isinstance(node, ast.Binop) and node.op in ARITHMETIC:
        left, right = constant_value(node.left), constant_value(node.right)
        if left is None or right is None or (node.op in "/%" and right == 0):
            return None
        return _fold(node.op, left, right)
    return None


def fold_overflows(node: ast.Binop) -> bool:
    """Whether `node` is arithmetic on constants whose exact result int64 and uint64 cannot hold,
    a shift by less than 0 or 64 or more, or a division by 0: bpftrace refuses to fold those."""
    if node.op not in ARITHMETIC:
        return False
    left, right = constant_value(node.left), constant_value(node.right)
    if left is None or right is None:
        return False
    if node.op in "/%":
        return right == 0
    if node.op in ("<<", ">>"):
        return not 0 <= right < 64 or (node.op == "<<" and left << right >= 1 << 64)
    exact = {"+": left + right, "-": left - right, "*": left * right}.get(node.op, 0)
    return not -(1 << 63) <= exact < 1 << 64


def _fold(op: str, left: int, right: int) -> int:
    if op == "/":  # C truncates toward zero
        quotient = abs(left) // abs(right)
        return _wrap(quotient if (left < 0) == (right < 0) else -quotient)
    if op == "%":
        return left - _fold("/", left, right) * right
    if op in ("<<", ">>"):
        return (left << right if op == "<<" else left >> right) if 0 <= right < 64 else 0
    results = {"+": left + right, "-": left - right, "*": left * right}
    results.update({"&": left & right, "|": left | right, "^": left ^ right})
    return _wrap(results[op])


def _wrap(value: int) -> int:
    """Constant arithmetic wraps like the 64-bit arithmetic it stands for."""
    if -(1 << 63) <= value < 1 << 64:
        return value
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def type_of_spec(spec: ast.TypeSpec, types: TypeMap | None = None) -> Type | None:
    """The type a TypeSpec names, or None when it names none that bpftc knows. typeof(X) and
    `enum NAME` are known once the resolver has typed them (`types`, Resolution.types)."""
    if spec in (types or {}) or spec.of is not None or spec.struct_kind == "enum":  # typed by the resolver
        found = (types or {}).get(spec)
        return found if isinstance(found, Type) and not isinstance(found, Unknown) else None
    if spec.struct_kind:
        base: Type = Struct(spec.struct_kind, spec.name)
    elif spec.name in INT_NAMES:
        base = INT_NAMES[spec.name]
    elif spec.name == "bool":
        base = BOOL
    elif spec.name == "string":
        if spec.pointer_depth == 0:
            return String(spec.array_length or 64) if spec.array_length != 0 else None
        base = String(64)
    else:
        return None
    for _ in range(spec.pointer_depth):
        base = Pointer(base)
    if spec.array_length is not None and spec.name != "string":
        return Array(base, spec.array_length)
    return base


def stored_int(t: Int) -> Int:
    """What an aggregation or a map read produces from an int: 64 bits, keeping the sign."""
    return Int(64, t.signed)


def aggregate_read_type(value: Aggregate) -> Type:
    """The integer a readable aggregate gives in an expression (`if (@c > 10)`)."""
    if value.kind == "count":
        return UINT64
    return Int(64, value.value.signed if value.value is not None else True)


class _Scope:
    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.bindings: dict[str, Binding] = {}

    def find(self, name: str) -> Binding | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.bindings:
                return scope.bindings[name]
            scope = scope.parent
        return None


class _Resolver(ast.Visitor):
    """Types one probe, updating the shared map types; remembers which maps it read and grew."""

    def __init__(self, resolution: Resolution, probe: ast.Probe) -> None:
        self.resolution = resolution
        self.types = resolution.types
        self.maps = resolution.maps
        self.probe = probe
        self.scope = _Scope(None)
        self.read_maps: set[str] = set()
        self.grown_maps: set[str] = set()
        self.bindings_grew = False
        self.read_untyped: set[Binding] = set()  # read before anything typed them: visit again

    def typed(self, node: ast.Node, t: Type) -> Type:
        self.types[node] = t
        return t

    # Probes, blocks and scopes

    def visit_probe(self, probe: ast.Probe) -> None:
        for _ in range(_MAX_ROUNDS):
            self.bindings_grew = False
            self.scope = _Scope(None)
            if probe.predicate is not None:
                self.visit(probe.predicate)
            self.visit_statements(probe.body.statements)
            if not self.bindings_grew:
                return
        raise AssertionError("type inference of scratch variables does not converge")

    def visit_statements(self, statements: list[ast.Node]) -> None:
        for statement in statements:
            self.visit(statement)

    def visit_Block(self, node: ast.Block) -> None:
        self.scope = _Scope(self.scope)
        self.visit_statements(node.statements)
        self.scope = self.scope.parent

    def _declare(self, variable: ast.Variable, declaration: ast.Node) -> Binding:
        """The binding `declaration` creates (the same one on every visit of the probe)."""
        binding = self.resolution.declarations.get(declaration)
        if binding is None:
            binding = self.resolution.declarations[declaration] = Binding(variable.name, declaration)
        self.scope.bindings[variable.name] = binding
        self.resolution.bindings[variable] = binding
        return binding

    def _assign_binding(self, binding: Binding, value: Type, value_node: ast.Node | None = None) -> None:
        if binding.fixed or isinstance(value, Unknown):
            return
        grown = _join(binding.joined, binding.type, _assignable(value), value_node)
        if grown is not None and grown != binding.type:
            grew_after_read = not isinstance(binding.type, Unknown) or binding in self.read_untyped
            self.bindings_grew = grew_after_read or self.bindings_grew
            binding.type = grown

    # Statements

    def visit_Let(self, node: ast.Let) -> None:
        value = self.visit(node.value) if node.value is not None else None
        visible = self.scope.find(node.variable.name)
        if visible is not None and visible.declaration is not node:
            self.resolution.redeclared.add(node)  # check.py reports it
            self.resolution.bindings[node.variable] = visible
            return
        binding = self._declare(node.variable, node)
        if node.type is not None:
            declared = self.visit(node.type)
            binding.type = declared if declared is not None else UNKNOWN
            binding.fixed = True
        elif value is not None:
            self._assign_binding(binding, value, node.value)
        self.typed(node.variable, binding.type)

    def visit_Assignment(self, node: ast.Assignment) -> None:
        value = self.visit(node.value)
        target = node.target
        if isinstance(target, ast.Variable):
            binding = self.scope.find(target.name) or self._declare(target, node)
            self.resolution.bindings[target] = binding
            self._assign_binding(binding, value, node.value)
            self.typed(target, binding.type)
        elif isinstance(target, ast.Map):
            self._assign_map(target, value, node.value)

    def visit_CompoundAssignment(self, node: ast.CompoundAssignment) -> None:
        raise AssertionError("compound assignments are rewritten by passes/desugar.py")

    def visit_ForRange(self, node: ast.ForRange) -> None:
        start, end = self.visit(node.start), self.visit(node.end)
        self.scope = _Scope(self.scope)
        binding = self._declare(node.variable, node)
        loop_type = unify(start, end) if isinstance(start, Int) and isinstance(end, Int) else None
        _widen_loop_variable(binding, Int(64, loop_type.signed) if isinstance(loop_type, Int) else UNKNOWN)
        self.typed(node.variable, binding.type)
        self.visit(node.body)
        self.scope = self.scope.parent

    def visit_ForMap(self, node: ast.ForMap) -> None:
        self._map_type(node.map, read=True, keyed=None)  # names the whole map
        info = self.maps.get(node.map.name)
        self.scope = _Scope(self.scope)
        binding = self._declare(node.variable, node)
        if info is not None and not isinstance(info.value, Unknown):
            value = info.value
            if isinstance(value, Aggregate):
                value = aggregate_read_type(value) if value.readable else UNKNOWN
            key = info.key if info.keyed else INT64
            _widen_loop_variable(binding, Tuple((key, value)))
        self.typed(node.variable, binding.type)
        self.visit(node.body)
        self.scope = self.scope.parent

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.condition)
        self.visit(node.then)
        if node.otherwise is not None:
            self.visit(node.otherwise)

    # Expressions

    def visit_Integer(self, node: ast.Integer) -> Type:
        return self.typed(node, literal_type(node.value))

    def visit_String(self, node: ast.String) -> Type:
        return self.typed(node, String(len(node.value) + 1))

    def visit_Bool(self, node: ast.Bool) -> Type:
        return self.typed(node, BOOL)

    def visit_Builtin(self, node: ast.Builtin) -> Type:
        if node.name == "probe":
            if self.probe in self.resolution.wildcard_probes:  # bpfrun's names, from a map
                return self.typed(node, String(PROBE_NAME_SIZE))
            if any(target.rate_parameter for target in self.resolution.targets_of.get(self.probe, ())):
                return self.typed(node, String(PROBE_NAME_SIZE))  # bpfrun's name, from a global
            names = self.resolution.probe_names.get(self.probe, ())
            return self.typed(node, String(max((len(name) for name in names), default=0) + 1))
        if node.name == "args":
            return self.typed(node, self._args_type())
        if node.name == "func":
            return self.typed(node, self._func_type())
        builtin = BUILTIN_VARIABLES.get(node.name)
        if builtin is None:  # a kernel enum's enumerator, by name?
            return self.typed(node, self.resolution.kernel.enumerator(node.name) or UNKNOWN)
        return self.typed(node, builtin.type)

    def _func_type(self) -> Type:
        """The function's name: known when the attach points name it; for a wildcard, bpfrun
        records each function it attaches to (in the probe-names map)."""
        targets = self.resolution.targets_of.get(self.probe, ())
        if any(target.wildcard for target in targets):
            return String(PROBE_NAME_SIZE)
        if targets and all(target.provider in ("kprobe", "kretprobe") for target in targets):
            return Symbol("ksym")  # as bpftrace types it: where the probe fired, named as ksym() names it
        names = [function_name(target) for target in targets]
        return String(max((len(name) for name in names), default=0) + 1)

    def _args_type(self) -> Type:
        """The struct of the first attach point's args; passes/check.py checks the others agree."""
        for attach_point in self.probe.attach_points:
            layout = self.resolution.args.get(attach_point)
            if isinstance(layout, StructLayout):
                return self._holdable(layout.type)
        return UNKNOWN

    def visit_Variable(self, node: ast.Variable) -> Type:
        binding = self.scope.find(node.name)
        if binding is None:
            self.resolution.bindings.pop(node, None)
            return self.typed(node, UNKNOWN)
        self.resolution.bindings[node] = binding
        if isinstance(binding.type, Unknown):
            self.read_untyped.add(binding)
        return self.typed(node, binding.type)

    def visit_Positional(self, node: ast.Positional) -> Type:
        return self.typed(node, INT64)

    def visit_PositionalCount(self, node: ast.PositionalCount) -> Type:
        return self.typed(node, INT64)

    def visit_Map(self, node: ast.Map) -> Type:
        value = self._map_type(node, read=True)
        if isinstance(value, Aggregate):
            value = aggregate_read_type(value) if value.readable else value
        return self.typed(node, value)

    def visit_Call(self, node: ast.Call) -> Type:
        function = FUNCTIONS.get(node.name)
        for position, arg in enumerate(node.args):
            if position == 0 and _names_whole_map(node) and isinstance(arg, ast.Map):
                # delete(@m, key) and has_key(@m, key) name a map with keys, without writing them;
                # print(@m), clear(@m)... name the whole map, with or without keys.
                keyed = True if node.name in ("delete", "has_key", "find") and len(node.args) >= 2 else None
                self._map_type(arg, read=False, keyed=keyed)
                self.types[arg] = self.maps[arg.name].value
            else:
                self.visit(arg)
        if node.name == "delete" and node.args and isinstance(node.args[0], ast.Map):
            self.maps[node.args[0].name].deleted = True
            if len(node.args) == 2:  # delete(@m, key): the key types the map like @m[key] would
                self._merge_key(node.args[0], (self.types[node.args[1]],))
        if node.name in ("has_key", "find") and len(node.args) >= 2 and isinstance(node.args[0], ast.Map):
            self._merge_key(node.args[0], (self.types[node.args[1]],))
        if node.name == "find" and len(node.args) == 3 and isinstance(node.args[2], ast.Variable):
            binding = self.resolution.bindings.get(node.args[2])
            value = self.maps[node.args[0].name].value if isinstance(node.args[0], ast.Map) else UNKNOWN
            if binding is not None and not isinstance(value, Aggregate):
                self._assign_binding(binding, value, node.args[0])
                self.typed(node.args[2], binding.type)
        if function is not None and function.aggregation:
            return self.typed(node, self._aggregate(node))
        if function is not None and function.result is not None:
            return self.typed(node, function.result)
        if node.name == "str":
            return self.typed(node, _str_type(node, self.types, self.resolution.string_size))
        if node.name == "bswap":
            operand = self.types.get(node.args[0]) if node.args else None
            return self.typed(node, Int(operand.bits, False) if isinstance(operand, Int) else UNKNOWN)
        if node.name == "getopt":
            option = option_of(node)
            return self.typed(node, _OPTION_TYPES[option.kind] if option else UNKNOWN)
        if node.name == "strftime" and node.args and isinstance(node.args[0], ast.String):
            return self.typed(node, Timestamp(node.args[0].value.decode("utf-8", "surrogateescape")))
        if node.name in ("kstack", "ustack"):
            return self.typed(node, _stack_type(node))
        if node.name == "buf":
            return self.typed(node, _buffer_type(node, self.types))
        if node.name == "path":
            size = constant_value(node.args[1]) if len(node.args) == 2 else self.resolution.string_size
            return self.typed(node, String(size if size and 0 < size <= STRING_READ_SIZE else STRING_READ_SIZE))
        if node.name == "str_concat":
            sizes = [t.size for t in (self.types[arg] for arg in node.args) if isinstance(t, String)]
            return self.typed(node, String(sum(sizes) - 1) if len(sizes) == 2 else UNKNOWN)
        if node.name == "pton":
            address = address_bytes(node.args[0]) if node.args else None
            return self.typed(node, Array(UINT8, len(address)) if address else UNKNOWN)
        if node.name in BUILTIN_VARIABLES and node.name != "probe":  # pid(), nsecs(boot)...
            return self.typed(node, BUILTIN_VARIABLES[node.name].type)
        return self.typed(node, VOID if function is not None else UNKNOWN)

    def visit_Unop(self, node: ast.Unop) -> Type:
        operand = self.visit(node.operand)
        constant = constant_value(node)
        if constant is not None:
            return self.typed(node, literal_type(constant))
        if node.op == "!":
            return self.typed(node, BOOL)
        if node.op == "*" and isinstance(operand, Pointer):
            return self.typed(node, self._holdable(operand.target))
        if node.op == "*" and isinstance(operand, Int) and not isinstance(operand, Enum):  # *kaddr("avenrun")
            return self.typed(node, UINT64)
        if node.op == "&" and isinstance(node.operand, ast.Variable) and isinstance(operand, (Int, Bool, Pointer)):
            return self.typed(node, Pointer(operand))  # where the variable is (passes/check.py)
        if node.op in ("-", "~") and isinstance(operand, (Int, Bool)):
            # bpftrace: computed at the operand's width, widened to 64 bits keeping its sign
            return self.typed(node, Int(64, isinstance(operand, Int) and operand.signed))
        return self.typed(node, UNKNOWN)

    def visit_Binop(self, node: ast.Binop) -> Type:
        left, right = self.visit(node.left), self.visit(node.right)
        if node.op in COMPARISONS | LOGICAL:
            return self.typed(node, BOOL)
        if not isinstance(left, (Int, Bool)) or not isinstance(right, (Int, Bool)):
            return self.typed(node, UNKNOWN)
        constant = constant_value(node)
        if constant is not None:
            return self.typed(node, literal_type(constant))
        if isinstance(left, Bool) and isinstance(right, Bool):
            return self.typed(node, BOOL)  # bpftrace: true + true is true
        return self.typed(node, Int(64, arithmetic_signed(node, self.types)))

    def visit_Conditional(self, node: ast.Conditional) -> Type:
        self.visit(node.condition)
        then = self.visit(node.then) if node.then is not node.condition else self.types[node.condition]
        otherwise = self.visit(node.otherwise)
        joined = unify(then, otherwise)
        return self.typed(node, joined if joined is not None else UNKNOWN)

    def visit_Cast(self, node: ast.Cast) -> Type:
        operand = self.visit(node.operand)
        if node.type is None:
            return self.types[node]
        target = self.visit(node.type)
        if isinstance(target, Array) and target.length == 0 and isinstance(operand, Int):
            element = target.element
            if isinstance(element, Int) and operand.size % element.size == 0:
                target = Array(element, operand.size // element.size)
        return self.typed(node, target if target is not None else UNKNOWN)

    def visit_Field(self, node: ast.Field) -> Type:
        operand = self.visit(node.operand)
        if isinstance(operand, Tuple) and node.name.isdigit() and int(node.name) < len(operand.elements):
            return self.typed(node, operand.elements[int(node.name)])
        if isinstance(operand, Record) and operand.element(node.name) is not None:
            return self.typed(node, operand.element(node.name))
        struct_field = self.resolution.kernel_field(operand, node.name)
        if struct_field is not None and struct_field.type is not None:
            return self.typed(node, self._holdable(struct_field.type))
        return self.typed(node, UNKNOWN)

    def _holdable(self, t: Type) -> Type:
        """A struct value, with how a copy of it is held (`@x = *p`), when it can be."""
        if not isinstance(t, Struct):
            return t
        return self.resolution.kernel.holdable(t)

    def visit_Index(self, node: ast.Index) -> Type:
        operand = self.visit(node.operand)
        self.visit(node.index)
        position = constant_value(node.index)
        if isinstance(operand, Tuple) and position is not None and 0 <= position < len(operand.elements):
            return self.typed(node, operand.elements[position])
        if isinstance(operand, Array):
            return self.typed(node, self._holdable(operand.element))
        if isinstance(operand, String):  # a character, as C's char: int8
            return self.typed(node, INT8)
        if isinstance(operand, Pointer):  # p[i]: the i-th element where p points
            target = operand.target
            return self.typed(node, Pointer(target.target, operand.user) if isinstance(target, Pointer) else self._holdable(target))
        return self.typed(node, UNKNOWN)

    def visit_Tuple(self, node: ast.Tuple) -> Type:
        elements = tuple(self.visit(element) for element in node.elements)
        return self.typed(node, Tuple(elements))

    def visit_Record(self, node: ast.Record) -> Type:
        elements = tuple(self.visit(value) for value in node.values)
        return self.typed(node, Record(tuple(node.names), elements))

    def visit_Increment(self, node: ast.Increment) -> Type:
        """`x++` assigns x an int64 (bpftrace: increments and decrements are int64 arithmetic), so
        the variable or map becomes at least as wide; a new map starts at 0."""
        target = node.target
        if isinstance(target, ast.Map):
            known = self._map_type(target, read=True)
            self._assign_map(target, _incremented(known))
            value = self.maps[target.name].value
        elif isinstance(target, ast.Variable):
            self.visit(target)
            binding = self.resolution.bindings.get(target)
            if binding is not None:
                self._assign_binding(binding, _incremented(binding.type))
                self.typed(target, binding.type)
            value = self.types[target]
        else:
            value = self.visit(target)
        return self.typed(node, self.typed(target, value))

    def visit_Sizeof(self, node: ast.Sizeof) -> Type:
        self.visit(node.operand)
        return self.typed(node, UINT64)

    def visit_TypeSpec(self, node: ast.TypeSpec) -> Type | None:
        """The type a TypeSpec names; for typeof(X), X's type, which X's evaluation does not need
        (X is typed, never run)."""
        if node.of is not None:
            self.typed(node, self.visit(node.of))
        elif node.struct_kind == "enum" and not node.pointer_depth and node.array_length is None:
            self.typed(node, self.resolution.kernel.enum(node.name) or UNKNOWN)
        elif not node.struct_kind and type_of_spec(node) is None and node.name != "string":
            self.typed(node, self._named_type(node) or UNKNOWN)  # (u32)x, (pid_t)x, (int)x
        return type_of_spec(node, self.types)

    def _named_type(self, node: ast.TypeSpec) -> Type | None:
        """A C type name: C's own integers, or a typedef of the kernel's BTF."""
        base = C_INT_NAMES.get(node.name) or self.resolution.kernel.typedef(node.name)
        if base is None:
            return None
        for _ in range(node.pointer_depth):
            base = Pointer(base)
        return Array(base, node.array_length) if node.array_length else base

    def visit_Offsetof(self, node: ast.Offsetof) -> Type:
        return self.typed(node, UINT64)

    def visit_BlockExpr(self, node: ast.BlockExpr) -> Type:
        self.scope = _Scope(self.scope)
        self.visit_statements(node.statements)
        value = self.visit(node.value) if node.value is not None else VOID
        self.scope = self.scope.parent
        return self.typed(node, value)

    # Maps

    def _map_type(self, node: ast.Map, read: bool, keyed: bool | None | str = "access") -> Type:
        """Type the keys of an access and record it; return the map's value type (UNKNOWN until
        something assigns it). `keyed` says whether the map has keys: by default, whether this
        access has keys; None when the access names the whole map and does not tell."""
        key_types = tuple(self.visit(key) for key in node.keys)
        keyed = bool(node.keys) if keyed == "access" else keyed
        info = self.maps.get(node.name)
        if info is None:
            info = self.maps[node.name] = MapInfo(node.name, keyed=keyed, first_access=node)
        elif info.keyed is None:
            info.keyed = keyed
        if node.keys:
            self._merge_key(node, key_types)
        if read:
            self.read_maps.add(node.name)
        return info.value

    def _merge_key(self, node: ast.Map, key_types: tuple[Type, ...]) -> None:
        info = self.maps[node.name]
        if not info.keyed:
            return  # check.py reports the mismatch
        key = key_types[0] if len(key_types) == 1 else Tuple(key_types)
        merged = unify(info.key, key)
        if merged is not None and merged != info.key:
            info.key = merged
            self.grown_maps.add(node.name)

    def _assign_map(self, node: ast.Map, value: Type, value_node: ast.Node | None = None) -> None:
        self._map_type(node, read=False)
        info = self.maps[node.name]
        if isinstance(value, Unknown):
            return
        if isinstance(value, Aggregate) or isinstance(info.value, Aggregate):
            merged = value if isinstance(info.value, Unknown) else _merge_aggregate(info.value, value)
        else:
            merged = _join(info.joined, info.value, _assignable(value), value_node)
        if merged is not None and merged != info.value:
            info.value = merged
            self.grown_maps.add(node.name)
        self.types[node] = info.value

    def _aggregate(self, node: ast.Call) -> Type:
        values = [self.types.get(arg, UNKNOWN) for arg in node.args]
        value = values[0] if values else None
        value_int = stored_int(value) if isinstance(value, Int) else (INT64 if isinstance(value, Bool) else None)
        if node.name == "count":
            return Aggregate("count")
        if node.name == "hist":
            bits = constant_value(node.args[1]) if len(node.args) > 1 else 0
            return Aggregate("hist", value_int, (bits if bits is not None else -1,))
        if node.name == "lhist":
            params = tuple(constant_value(arg) for arg in node.args[1:])
            return Aggregate("lhist", value_int, tuple(p if p is not None else 0 for p in params))
        return Aggregate(node.name, value_int)


def _widen_loop_variable(binding: Binding, loop_type: Type) -> None:
    """A loop variable holds the loop's values and whatever the body assigns it: its type only
    grows, or the probe would be typed again and again."""
    binding.type = unify(binding.type, loop_type) or loop_type


def _incremented(known: Type) -> Type:
    """What `x++` assigns: 64 bits of x's own sign (a uint64 wraps to 0, as in bpftrace)."""
    return Int(64, known.signed) if isinstance(known, Int) else INT64


def _join(literals: Literals, known: Type, value: Type, value_node: ast.Node | None) -> Type | None:
    """The type a variable or map of type `known` takes when assigned `value` (None: they do not
    mix). A non-negative literal adapts, as in bpftrace: `$a = 1; $a = (uint64)2` makes $a a
    uint64, not the int64 that holds both int8 and uint64; it widens `known` only if it does not fit.
    """
    literal = constant_value(value_node) if value_node is not None else None
    if literal is not None and literal >= 0 and isinstance(value, Int):
        literals.largest = max(literals.largest, literal)
        if isinstance(known, Int) and not literals.only:
            wider = (Int(bits, known.signed) for bits in (8, 16, 32, 64) if bits >= known.bits)
            # A literal past INT64_MAX into a signed variable stays int64: check.py reports it.
            return next((t for t in wider if fits(literal, t)), INT64 if known.signed else UINT64)
        return unify(known, value)
    if isinstance(value, Int) and isinstance(known, Int) and literals.only:
        literals.only = False
        return value if fits(literals.largest, value) else unify(value, literal_type(literals.largest))
    literals.only = literals.only and isinstance(value, Unknown)
    return unify(known, value)


def parameter_offset(node: ast.Node) -> tuple[int, int] | None:
    """(N, k) when `node` is `$N + k` (or `$N`, k = 0) with a constant k >= 0: what str() of a
    positional parameter takes."""
    if isinstance(node, ast.Cast) and node.type is None:
        return parameter_offset(node.operand)
    if isinstance(node, ast.Positional):
        return node.index, 0
    if isinstance(node, ast.Binop) and node.op == "+" and isinstance(node.left, (ast.Positional, ast.Cast)):
        inner, offset = parameter_offset(node.left), constant_value(node.right)
        if inner is not None and offset is not None and offset >= 0:
            return inner[0], inner[1] + offset
    return None


_OPTION_TYPES = {"int": INT64, "string": String(PARAMETER_STRING_SIZE), "bool": BOOL}


def option_of(node: ast.Call) -> OptionSpec | None:
    """The option a getopt() call names, with its default; None when its arguments are not literals."""
    if not node.args or not isinstance(node.args[0], ast.String):
        return None
    name = node.args[0].value.decode("utf-8", "surrogateescape")
    default = node.args[1] if len(node.args) > 1 else ast.Bool(node.span, False)
    if isinstance(default, ast.Bool):
        return OptionSpec(name, "bool", "true" if default.value else "false")
    if isinstance(default, ast.String):
        return OptionSpec(name, "string", default.value.decode("utf-8", "surrogateescape"))
    value = constant_value(default)
    return OptionSpec(name, "int", str(value)) if value is not None else None


def _str_type(node: ast.Call, types: TypeMap, string_size: int) -> Type:
    """str($N) is the parameter as a string; str() of a string is that string; str() of a pointer
    or an address is the string read from there."""
    if not node.args:
        return UNKNOWN
    if parameter_offset(node.args[0]) is not None:
        return String(PARAMETER_STRING_SIZE)
    argument = types.get(node.args[0])
    if isinstance(argument, (Pointer, Int)):
        length = constant_value(node.args[1]) if len(node.args) == 2 else None
        return String(length if length is not None and 0 < length < string_size else string_size)
    return argument if isinstance(argument, String) else UNKNOWN


def offset_of(node: ast.Offsetof, resolution: Resolution) -> int | None:
    """offsetof(struct x, a.b): bytes from the struct's start, in the layout compiled against;
    None when the struct or a field is not there."""
    struct, offset = type_of_spec(node.type), 0
    for name in node.path:
        field = resolution.kernel_field(struct, name)
        if field is None:
            return None
        offset += field.offset
        struct = field.type
    return offset


BUFFER_MAX = 1024  # bytes a buf() holds at most


def _buffer_type(node: ast.Call, types: TypeMap) -> Type:
    """buf(x, n): n bytes (n known only when the program runs: up to 1024, BUFFER_MAX); buf(string):
    the string's bytes."""
    if len(node.args) == 2:
        length = constant_value(node.args[1])
        if length is None:
            return Formatted("buffer", BUFFER_MAX)
        return Formatted("buffer", length) if 1 <= length <= BUFFER_MAX else UNKNOWN
    source = types.get(node.args[0]) if node.args else None
    return Formatted("buffer", source.size) if isinstance(source, String) else UNKNOWN


def _stack_type(node: ast.Call) -> Type:
    """kstack(perf), kstack(8), kstack(raw, 8): passes/check.py reports arguments of other kinds."""
    mode, depth = "bpftrace", MAX_STACK_DEPTH
    for arg in node.args:
        if isinstance(arg, ast.Builtin) and arg.name in STACK_MODES:
            mode = arg.name
        elif isinstance(arg, ast.Integer) and 1 <= arg.value <= MAX_STACK_DEPTH:
            depth = arg.value
    return Stack(node.name, mode, depth)


def _names_whole_map(call: ast.Call) -> bool:
    """Whether the call's first argument names a map rather than reading an element of it."""
    function = FUNCTIONS.get(call.name)
    if function is None:
        return False
    return function.map_argument or (call.name == "print" and bool(call.args) and isinstance(call.args[0], ast.Map)
                                     and not call.args[0].keys)  # fmt: skip


def _assignable(value: Type) -> Type:
    """The type a variable or map takes from an assigned value: a readable aggregate reads as its
    integer; everything else as it is."""
    if isinstance(value, Aggregate) and value.readable:
        return aggregate_read_type(value)
    return value


def _merge_aggregate(known: Type, new: Type) -> Type | None:
    """Two aggregations into one map: the same function (and parameters); a signed value makes
    the whole aggregate signed."""
    if not isinstance(known, Aggregate) or not isinstance(new, Aggregate):
        return None
    if known.kind != new.kind or known.params != new.params:
        return None
    if known.value is None:
        return new
    if new.value is None:
        return known
    return Aggregate(known.kind, Int(64, known.value.signed or new.value.signed), known.params)


def arithmetic_signed(node: ast.Binop, types: TypeMap) -> bool:
    """Signed when the operator is '-' or a signed operand that is not a literal >= 0 takes part
    (bpftrace's promotion: a non-negative literal adapts to the other operand)."""

    def signed(operand: ast.Node) -> bool:
        t = types.get(operand)
        constant = constant_value(operand)
        return isinstance(t, Int) and t.signed and (constant is None or constant < 0)

    return node.op == "-" or signed(node.left) or signed(node.right)
