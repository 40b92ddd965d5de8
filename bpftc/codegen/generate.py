"""Generate: the converted program → an LLVM module with one BPF function per attach point.

Consumes the program (after passes/convert.py), the `Resolution` (types) and the `Plan` (maps,
events, programs); produces an `ir.Module`. Never re-checks and never works out a type: every
conversion is an explicit Cast node. Reports one kind of error: a statement whose live values
need more memory than a program may have (codegen/memory.py), at that statement.

Values: a scalar (integer, bool) is an i64 register, sign- or zero-extended from its width; any
other value is a pointer to memory holding it as `storage.layout_of` lays it out. `value(node)`
gives either; `into(node, destination)` writes a node's stored form straight into memory (a map
key, a ring buffer record), without a copy on the stack first.
"""

from __future__ import annotations

import contextlib

from llvmlite import ir

from bpftc import ast, storage
from bpftc.arch import Arch
from bpftc.builtins import (
    BUILTIN_VARIABLES,
    COMM_SIZE,
    REGISTERS,
    TYPE_PREDICATES,
    USERMODE_ALWAYS,
    USERMODE_FROM_REGISTERS,
)
from bpftc.codegen import builder as bpf_helpers
from bpftc.codegen import kernel_data, strings
from bpftc.codegen.builder import I64, PTR, BpfBuilder, define_license, define_map, describe_map
from bpftc.codegen.debuginfo import DebugInfo
from bpftc.codegen.kernel_data import CONTEXT, KERNEL, USER, KernelData
from bpftc.codegen.maps import MapAccess
from bpftc.codegen.memory import CALLBACK_STACK_BUDGET, SCRATCH_LIMIT, STACK_BUDGET, Memory, OutOfMemory
from bpftc.diagnostics import Diagnostics
from bpftc.passes.resolve import (
    Binding,
    Resolution,
    address_bytes,
    args_layout,
    constant_value,
    function_name,
    offset_of,
    parameter_offset,
    type_of_spec,
)
from bpftc.passes.resources import EVENT_MAP, LOST_MAP, PROBE_NAMES_ENTRIES, SCRATCH_MAP, Plan, ProgramPlan
from bpftc.probes import PROVIDERS
from bpftc.types import (
    INT8,
    Array,
    Bool,
    Enum,
    Int,
    Pointer,
    Record,
    Stack,
    String,
    Struct,
    Symbol,
    Tuple,
    Type,
    Unknown,
)
from common import layout, schema
from common.layout import Layout
from common.record import field as record_field
from common.record import record, replace

TARGET_TRIPLE = "bpfel"
DATA_LAYOUT = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
RING_BUFFER_BYTES = 1 << 20  # a power of 2 and a multiple of the page size, as the kernel requires
_BUILTIN_HELPERS = {
    "nsecs": bpf_helpers.KTIME_GET_NS,
    "cpu": bpf_helpers.GET_SMP_PROCESSOR_ID,
    "rand": bpf_helpers.GET_PRANDOM_U32,
    "numaid": bpf_helpers.GET_NUMA_NODE_ID,
    "jiffies": bpf_helpers.JIFFIES64,
    "cgroup": bpf_helpers.GET_CURRENT_CGROUP_ID,
}


@record
class Module:
    """What the program's functions share: the LLVM module and its maps."""

    module: ir.Module
    debug_info: DebugInfo
    maps: dict[str, ir.GlobalVariable]  # by the script's map name
    ring_buffer: ir.GlobalVariable | None
    lost: ir.GlobalVariable | None
    globals: ir.GlobalVariable | None = None  # .rodata, written by bpfrun before load
    probe_names: ir.GlobalVariable | None = None  # tracepoint id → name, for wildcard probes
    scratch: ir.GlobalVariable | None = None
    kernel_data: KernelData | None = None
    stacks: ir.GlobalVariable | None = None  # the stack-trace map of kstack and ustack
    usdt_specs: ir.GlobalVariable | None = None  # where each USDT site has its arguments
    helpers: set[int] = record_field(default_factory=set)  # the BPF helper ids the functions call

    def count_callback(self) -> ir.Function:
        """The callback of len(): it only goes on to the next element."""
        existing = self.module.globals.get("visit_element")
        if existing is not None:
            return existing
        function = ir.Function(self.module, ir.FunctionType(I64, [PTR, PTR, PTR, PTR]), "visit_element")
        function.linkage = "internal"
        function.section = ".text"
        function.attributes.add("nounwind")
        ir.IRBuilder(function.append_basic_block("entry")).ret(I64(0))
        self.debug_info.describe_function(function)
        return function

    def scratch_map(self) -> ir.GlobalVariable:
        if self.scratch is None:
            self.scratch = define_map(self.module, SCRATCH_MAP, 4)
        return self.scratch


def generate(
    program: ast.Program, resolution: Resolution, plan: Plan, arch: Arch, file_name: str, diagnostics: Diagnostics
) -> tuple[ir.Module, tuple[str, ...]]:
    """The module, and the names of the BPF helpers its code calls (schema.BPF_HELPERS)."""
    module = ir.Module(name=file_name)
    module.triple = TARGET_TRIPLE
    module.data_layout = DATA_LAYOUT
    debug_info = DebugInfo(module, file_name)
    shared = Module(module, debug_info, _define_script_maps(module, debug_info, plan), None, None)
    shared.kernel_data = KernelData(module, debug_info, resolution.kernel)
    if plan.resources.event_map:
        shared.ring_buffer = define_map(module, EVENT_MAP, 2)
        describe_map(
            debug_info, shared.ring_buffer, {"type": bpf_helpers.MAP_TYPE_RINGBUF, "max_entries": RING_BUFFER_BYTES}
        )
        shared.lost = define_map(module, LOST_MAP, 4)
        describe_map(debug_info, shared.lost, _array_attributes(8))
    if plan.resources.globals is not None:
        shared.globals = _define_globals(module, plan.resources.globals.size)
    if plan.resources.stack_map:
        shared.stacks = define_map(module, plan.resources.stack_map, 4)
        attributes = {"type": bpf_helpers.MAP_TYPE_STACK_TRACE, "max_entries": schema.STACK_MAP_ENTRIES}
        attributes |= {"key_size": 4, "value_size": 8 * layout.MAX_STACK_DEPTH}
        describe_map(debug_info, shared.stacks, attributes)
    if plan.resources.usdt_spec_map:
        shared.usdt_specs = define_map(module, plan.resources.usdt_spec_map, 4)
        attributes = {"type": bpf_helpers.MAP_TYPE_HASH, "max_entries": schema.USDT_SPEC_ENTRIES}
        describe_map(debug_info, shared.usdt_specs, attributes | {"key_size": 8, "value_size": schema.USDT_SPEC_SIZE})
    if plan.resources.probe_names_map:
        shared.probe_names = define_map(module, plan.resources.probe_names_map, 4)
        attributes = {"type": bpf_helpers.MAP_TYPE_HASH, "max_entries": PROBE_NAMES_ENTRIES}
        describe_map(debug_info, shared.probe_names, attributes | {"key_size": 8, "value_size": schema.PROBE_NAME_SIZE})
    define_license(module)
    scratch_bytes = 0
    for program_plan in plan.programs:
        generator = _ProbeGenerator(shared, program_plan, resolution, plan, arch, diagnostics)
        scratch_bytes = max(scratch_bytes, generator.generate())
    if shared.scratch is not None:
        describe_map(debug_info, shared.scratch, _array_attributes(scratch_bytes))
    debug_info.finish()
    return module, tuple(sorted(schema.BPF_HELPERS[helper] for helper in shared.helpers))


def _define_script_maps(module: ir.Module, debug_info: DebugInfo, plan: Plan) -> dict[str, ir.GlobalVariable]:
    kernel_types = {
        schema.HASH: bpf_helpers.MAP_TYPE_HASH,
        schema.PERCPU_HASH: bpf_helpers.MAP_TYPE_PERCPU_HASH,
        schema.PERCPU_ARRAY: bpf_helpers.MAP_TYPE_PERCPU_ARRAY,
        schema.LRU_HASH: bpf_helpers.MAP_TYPE_LRU_HASH,
        schema.LRU_PERCPU_HASH: bpf_helpers.MAP_TYPE_LRU_PERCPU_HASH,
    }
    variables = {}
    for name, spec in plan.maps.items():
        variable = define_map(module, spec.elf_name, 4)
        attributes = {
            "type": kernel_types[spec.kernel_type],
            "max_entries": spec.max_entries,
            "key_size": schema.key_size(spec),
            "value_size": schema.element_size(spec),
        }
        describe_map(debug_info, variable, attributes)
        variables[name] = variable
    return variables


def _define_globals(module: ir.Module, size: int) -> ir.GlobalVariable:
    """The values bpfrun writes before loading, in .rodata: libbpf freezes that map after load, so
    the verifier knows them as constants (a loop up to ncpus or $1 is bounded). Not an LLVM
    constant, or LLVM would fold its zero initializer into every read."""
    array = ir.ArrayType(I64, layout.aligned(size, 8) // 8)
    variable = ir.GlobalVariable(module, array, "bpftc_globals")
    variable.initializer = ir.Constant(array, None)
    variable.section = ".rodata"
    variable.align = 8
    return variable


def _array_attributes(value_size: int) -> dict[str, int]:
    return {"type": bpf_helpers.MAP_TYPE_PERCPU_ARRAY, "max_entries": 1, "key_size": 4, "value_size": value_size}


@record(eq=False)
class _Callback:
    """A for-map body's function, what it shares with the probe, and where its scratch starts."""

    function: ir.Function
    loop: ast.ForMap
    outer: list[Binding]  # the probe's variables it uses, in the order of the context's pointers
    scratch_start: int
    context: ir.Value | None = None  # the function's context argument, once generation starts


def _outer_bindings(body: ast.Node, bindings: dict, storage_of: dict) -> list[Binding]:
    """The variables `body` uses that are declared outside it (they already have storage)."""
    found: dict[Binding, None] = {}
    for node in ast.walk(body):
        if isinstance(node, ast.Variable) and node in bindings and bindings[node] in storage_of:
            found.setdefault(bindings[node], None)
    return list(found)


class _Loop:
    def __init__(self, next_iteration: ir.Block, done: ir.Block) -> None:
        self.next_iteration = next_iteration
        self.done = done


class _ProbeGenerator(ast.Visitor):
    """Generates one probe's function for one of its attach points."""

    def __init__(
        self,
        shared: Module,
        program_plan: ProgramPlan,
        resolution: Resolution,
        plan: Plan,
        arch: Arch,
        diagnostics: Diagnostics,
        callback: _Callback | None = None,
    ) -> None:
        self.shared = shared
        self.program_plan = program_plan
        self.resolution = resolution
        self.types = resolution.types
        self.bindings = resolution.bindings
        self.plan = plan
        self.arch = arch
        self.diagnostics = diagnostics
        self.callback = callback
        if callback is None:
            function = ir.Function(shared.module, ir.FunctionType(I64, [PTR]), program_plan.spec.program)
            function.section = program_plan.target.section
            self.memory_budget, scratch_start = STACK_BUDGET, 0
        else:
            function = callback.function
            self.memory_budget, scratch_start = CALLBACK_STACK_BUDGET, callback.scratch_start
        function.attributes.add("nounwind")  # no .eh_frame: BPF has no unwinding
        shared.debug_info.describe_function(function)
        self.bpf = BpfBuilder(function, shared.helpers, shared.debug_info.describe_function)
        self.ir = self.bpf.ir
        self.memory = Memory(self.bpf, shared.scratch_map, self.memory_budget, scratch_start)
        self.maps = MapAccess(self)
        self.storage: dict[Binding, ir.Value] = {}  # each variable's alloca (scalars) or memory
        self.loops: list[_Loop | None] = []  # None: the body of a for-map callback

    def generate(self) -> int:
        """Generate the function; return the bytes of per-CPU scratch it needs."""
        probe = self.program_plan.probe
        try:
            if self.program_plan.spec.provider not in schema.UNSCOPED_PROVIDERS:
                self._scope_to_target_pid()
            if probe.predicate is not None:
                with self.statement(probe.predicate):
                    predicate = self.value(probe.predicate)
                with self.ir.if_then(self.ir.icmp_unsigned("==", predicate, I64(0), name="filtered")):
                    self.ir.ret(I64(0))
            self.visit(probe.body)
        except _Refused:
            pass
        self.bpf.finish(self.memory.entry_guard())
        return self.memory.scratch_bytes

    # Statements

    @contextlib.contextmanager
    def statement(self, node: ast.Node):
        """The temporaries of one statement die at its end."""
        mark = self.memory.mark()
        with self._located(node):
            yield
        self.memory.release(mark)

    @contextlib.contextmanager
    def _located(self, node: ast.Node):
        """Report running out of memory at `node`, and stop generating this program."""
        try:
            yield
        except OutOfMemory:
            self.diagnostics.error(
                node.span,
                f"the values this statement keeps need more than {SCRATCH_LIMIT} bytes of memory, "
                "the most a probe may use",
            )
            raise _Refused from None

    def visit_Block(self, node: ast.Block) -> None:
        self._statements(node.statements)

    def _statements(self, statements: list[ast.Node]) -> None:
        """Each statement in turn; the variables one declares live until the block ends."""
        mark = self.memory.mark()
        for statement in statements:
            with self._located(statement):
                self._allocate_declared(statement)
            with self.statement(statement):
                self.visit(statement)
        self.memory.release(mark)

    def _allocate_declared(self, statement: ast.Node) -> None:
        variable = None
        if isinstance(statement, ast.Let):
            variable = statement.variable
        elif isinstance(statement, ast.Assignment) and isinstance(statement.target, ast.Variable):
            variable = statement.target
        binding = self.bindings[variable] if variable is not None else None
        # A `let` never assigned has no type (check.py warns; nothing can read it): no storage.
        if binding is not None and binding not in self.storage and not isinstance(binding.type, Unknown):
            self._allocate(binding)

    def _allocate(self, binding: Binding) -> ir.Value:
        if storage.in_register(binding.type):
            slot = self.bpf.allocas.alloca(I64, name=binding.name[1:])
            self.bpf.allocas.store(I64(0), slot)  # LLVM promotes it to a register (mem2reg)
        else:
            slot = self.memory.acquire(storage.size_of(binding.type))
        self.storage[binding] = slot
        return slot

    def visit_ExprStatement(self, node: ast.ExprStatement) -> None:
        self.value(node.expr)

    def visit_Assignment(self, node: ast.Assignment) -> None:
        target = node.target
        if isinstance(target, ast.Variable):
            self._store_variable(target, node.value)
        elif isinstance(target, ast.Map):
            result = self.maps.assign(target, node.value)
            if node in self.plan.event_ids:  # passes/resources.py: report a failed update
                with self.ir.if_then(self.ir.icmp_signed("<", result, I64(0))):
                    self._send(node, [], default=result)
        else:
            self.value(node.value)

    def visit_Let(self, node: ast.Let) -> None:
        binding = self.bindings[node.variable]
        if isinstance(binding.type, Unknown):
            return
        slot = self.storage.get(binding) or self._allocate(binding)
        if node.value is not None:
            self._store_variable(node.variable, node.value)
        elif storage.in_register(binding.type):
            self.bpf.store_i64(I64(0), slot)
        else:
            self.bpf.zero(slot, storage.size_of(binding.type))

    def _store_variable(self, variable: ast.Variable, value: ast.Node) -> None:
        binding = self.bindings[variable]
        slot = self.storage.get(binding) or self._allocate(binding)
        if storage.in_register(binding.type):
            self.bpf.store_i64(self.value(value), slot)
        else:
            self.into(value, slot)

    def variable_slot(self, variable: ast.Variable) -> tuple[ir.Value, Type]:
        """Where a variable is stored (allocated on first use), and its type."""
        binding = self.bindings[variable]
        return self.storage.get(binding) or self._allocate(binding), binding.type

    def visit_If(self, node: ast.If) -> None:
        with self.statement(node.condition):
            condition = self.bpf.truth(self.value(node.condition))
        if node.otherwise is None:
            with self.ir.if_then(condition):
                self.visit(node.then)
            return
        with self.ir.if_else(condition) as (then, otherwise):
            with then:
                self.visit(node.then)
            with otherwise:
                self.visit(node.otherwise)

    def visit_Unroll(self, node: ast.Unroll) -> None:
        for _ in range(constant_value(node.count)):
            self.visit(node.body)

    def visit_While(self, node: ast.While) -> None:
        header, body, done = self.bpf.new_block("while"), self.bpf.new_block("loop"), self.bpf.new_block("done")
        self.ir.branch(header)
        self.ir.position_at_end(header)
        with self.statement(node.condition):
            condition = self.bpf.truth(self.value(node.condition))
        self.ir.cbranch(condition, body, done)
        self._loop_body(node.body, body, header, done)
        self.ir.position_at_end(done)

    def visit_ForRange(self, node: ast.ForRange) -> None:
        with self.statement(node):
            start, end = self.value(node.start), self.value(node.end)
        binding = self.bindings[node.variable]
        counter = self._allocate(binding)
        limit = self.bpf.allocas.alloca(I64, name="limit")
        self.bpf.store_i64(start, counter)
        self.bpf.store_i64(end, limit)
        header, body, step, done = (self.bpf.new_block(name) for name in ("for", "loop", "step", "done"))
        self.ir.branch(header)
        self.ir.position_at_end(header)
        compare = self.ir.icmp_signed if binding.type.signed else self.ir.icmp_unsigned
        self.ir.cbranch(compare("<", self.bpf.load_i64(counter), self.bpf.load_i64(limit)), body, done)
        self._loop_body(node.body, body, step, done)
        self.ir.position_at_end(step)
        self.bpf.store_i64(self.ir.add(self.bpf.load_i64(counter), I64(1)), counter)
        self.ir.branch(header)
        self.ir.position_at_end(done)

    def _loop_body(self, body: ast.Block, start: ir.Block, next_iteration: ir.Block, done: ir.Block) -> None:
        self.ir.position_at_end(start)
        self.loops.append(_Loop(next_iteration, done))
        self.visit(body)
        self.loops.pop()
        if not self.ir.block.is_terminated:
            self.ir.branch(next_iteration)

    def visit_Jump(self, node: ast.Jump) -> None:
        loop = self.loops[-1] if self.loops else None
        if node.kind == "return":
            if self.callback is not None:  # tell the probe to return once the iteration stops
                self.bpf.store_i64(I64(1), self.callback.context)
                self.ir.ret(I64(1))
                self.ir.position_at_end(self.bpf.new_block("unreachable"))
            else:
                self.bpf.return_now()
            return
        if loop is None:  # in a for-map callback: 1 stops the iteration, 0 goes on to the next element
            self.ir.ret(I64(1 if node.kind == "break" else 0))
        else:
            self.ir.branch(loop.done if node.kind == "break" else loop.next_iteration)
        self.ir.position_at_end(self.bpf.new_block("unreachable"))

    def visit_ForMap(self, node: ast.ForMap) -> None:
        """`for ($kv : @m) { body }`: the body is a callback that bpf_for_each_map_elem calls for
        every element. The variables of the probe the body uses are reached through a context on
        the probe's stack (pointers to their storage), after a flag the body sets on `return`."""
        outer = _outer_bindings(node.body, self.bindings, self.storage)
        context = self.bpf.allocas.alloca(ir.ArrayType(I64, 2 + len(outer)), name="for_context")
        context.type = PTR  # llvmlite's typed alloca used as an opaque pointer, as in memory.py
        self.bpf.store_i64(I64(0), context)
        self.ir.store(self.bpf.context, self.bpf.at(context, 8), align=8)  # the probe's, for args, kstack...
        for index, binding in enumerate(outer, 2):
            self.ir.store(self.storage[binding], self.bpf.at(context, 8 * index), align=8)
        function = ir.Function(
            self.shared.module,
            ir.FunctionType(I64, [PTR, PTR, PTR, PTR]),
            f"{self.bpf.function.name}_for_{len(self.shared.module.functions)}",
        )
        function.linkage = "internal"
        function.section = ".text"
        callback = _Callback(function, node, outer, self.memory.scratch_offset)
        child = _ProbeGenerator(
            self.shared, self.program_plan, self.resolution, self.plan, self.arch, self.diagnostics, callback
        )
        self.memory.scratch_bytes = max(self.memory.scratch_bytes, child.generate_callback())
        map_variable = self.shared.maps[node.map.name]
        self.bpf.call_helper(bpf_helpers.FOR_EACH_MAP_ELEM, [map_variable, function, context, I64(0)], name="visited")
        with self.ir.if_then(self.bpf.truth(self.bpf.load_i64(context, name="returned"))):
            self.ir.ret(I64(0))

    def _scope_to_target_pid(self) -> None:
        """bpfrun -p PID: return at once in other processes. Without -p the pid is 0 in the
        frozen .rodata, the verifier knows it, and removes this code as dead."""
        target = self.load_global(schema.TARGET_PID)
        with self.ir.if_then(self.bpf.truth(target)):
            pid_tgid = self.bpf.call_helper(bpf_helpers.GET_CURRENT_PID_TGID, [], name="pid_tgid")
            other = self.ir.icmp_unsigned("!=", self.ir.lshr(pid_tgid, I64(32)), target, name="other_process")
            with self.ir.if_then(other):
                self.ir.ret(I64(0))

    def generate_callback(self) -> int:
        """Generate a for-map body's function; return the scratch bytes it needs (at most)."""
        callback = self.callback
        _, key, value, context = self.bpf.function.args
        self.bpf.probe_context = self.ir.load(self.bpf.at(context, 8), name="probe_context", typ=PTR, align=8)
        for index, binding in enumerate(callback.outer, 2):
            self.storage[binding] = self.ir.load(
                self.bpf.at(context, 8 * index), name=binding.name[1:], typ=PTR, align=8
            )
        callback.context = context
        element = self._allocate(self.bindings[callback.loop.variable])
        element_type = self.bindings[callback.loop.variable].type
        fields = storage.layout_of(element_type).fields
        self.bpf.copy_bytes(element, key, storage.size_of(element_type.elements[0]))
        self.bpf.copy_bytes(self.bpf.at(element, fields[1].offset), value, storage.size_of(element_type.elements[1]))
        self.loops.append(None)
        try:
            self.visit(callback.loop.body)
        except _Refused:
            pass
        self.bpf.finish(self.memory.entry_guard())
        return self.memory.scratch_bytes

    # Expressions: value() and into()

    def value(self, node: ast.Node) -> ir.Value:
        """The node's value: an i64 for scalars, else a pointer to its stored form."""
        return self.visit(node)

    def into(self, node: ast.Node, destination: ir.Value) -> None:
        """Write the node's stored form (storage.size_of bytes) at `destination`."""
        t = self.types[node]
        if isinstance(t, Struct):
            self._copy_struct(node, t, destination)
            return
        write = getattr(self, f"into_{type(node).__name__}", None)
        if write is not None:
            write(node, destination)
            return
        result = self.value(node)
        if storage.in_register(t):
            self.bpf.store_i64(result, destination)
        else:
            self.bpf.copy(destination, result, storage.size_of(t))

    def _copy_struct(self, node: ast.Node, struct: Struct, destination: ir.Value) -> None:
        """A whole kernel struct's bytes, as the BTF compiled against lays them out (bpfrun checks
        its host's agrees: common/btf.py layout_digest); the padding after them zeroed."""
        size = struct.held.layout.size
        address, space = self._struct_base(node)
        if storage.size_of(struct) > size:
            self.bpf.store_i64(I64(0), destination, storage.size_of(struct) - 8)
        if size:
            kernel_data.probe_read(self.bpf, destination, size, address, KERNEL if space == CONTEXT else space)

    def temporary(self, t: Type) -> ir.Value:
        return self.memory.acquire(storage.size_of(t))

    def in_memory(self, node: ast.Node) -> ir.Value:
        """A value that lives in memory: written into a temporary by `into`."""
        destination = self.temporary(self.types[node])
        self.into(node, destination)
        return destination

    def visit_Integer(self, node: ast.Integer) -> ir.Value:
        return I64(node.value & (1 << 64) - 1)

    def visit_Bool(self, node: ast.Bool) -> ir.Value:
        return I64(int(node.value))

    def visit_String(self, node: ast.String) -> ir.Value:
        return self.in_memory(node)

    def into_String(self, node: ast.String, destination: ir.Value) -> None:
        self.bpf.store_bytes(destination, node.value, storage.size_of(self.types[node]))

    def visit_Builtin(self, node: ast.Builtin) -> ir.Value:
        name = node.name
        if isinstance(self.types[node], Enum) and name not in BUILTIN_VARIABLES:  # an enumerator
            return I64(self.types[node].value_of(name))
        if name in ("comm", "probe", "probetype", "kstack", "ustack", "func"):
            return self.in_memory(node)
        if name in ("pid", "tid"):
            pid_tgid = self.bpf.call_helper(bpf_helpers.GET_CURRENT_PID_TGID, [], name="pid_tgid")
            if name == "pid":
                return self.ir.lshr(pid_tgid, I64(32), name="pid")
            return self.ir.and_(pid_tgid, I64(0xFFFFFFFF), name="tid")
        if name in ("uid", "gid", "username"):
            uid_gid = self.bpf.call_helper(bpf_helpers.GET_CURRENT_UID_GID, [], name="uid_gid")
            if name == "gid":
                return self.ir.lshr(uid_gid, I64(32), name="gid")
            return self.ir.and_(uid_gid, I64(0xFFFFFFFF), name="uid")
        if name in _BUILTIN_HELPERS:
            return self.bpf.call_helper(_BUILTIN_HELPERS[name], [], name=name)
        if name == "ncpus":
            return self.load_global(schema.NCPUS)
        if name == "cpid":
            return self.load_global(schema.CHILD_PID)
        if name == "elapsed":
            now = self.bpf.call_helper(bpf_helpers.KTIME_GET_NS, [], name="now")
            return self.ir.sub(now, self.load_global(schema.START_NS), name="elapsed")
        if name == "retval" and self.program_plan.target.provider == "fexit":  # after the arguments
            arguments = args_layout(self.program_plan.target, self.resolution.kernel)
            offset = arguments.size if not isinstance(arguments, str) else 0
            return self.bpf.load_i64(self.bpf.context, offset, name="retval")
        if name == "retval":
            return self.bpf.load_i64(self.bpf.context, self.arch.return_offset, name="retval")
        if name == "curtask":
            return self.bpf.call_helper(kernel_data.GET_CURRENT_TASK, [], name="curtask")
        if name == "usermode":
            return self._usermode()
        if name.startswith("arg"):
            index = int(name[3:])
            arguments = PROVIDERS[self.program_plan.target.provider].arguments
            if arguments == "array":  # rawtracepoint: u64 args[]
                return self.bpf.load_i64(self.bpf.context, 8 * index, name=name)
            if arguments == "usdt":
                return self._usdt_argument(index)
            return self.bpf.load_i64(self.bpf.context, self.arch.arg_offsets[index], name=name)
        raise AssertionError(f"no code for builtin {name}")

    def into_Builtin(self, node: ast.Builtin, destination: ir.Value) -> None:
        if node.name == "comm":
            self.bpf.call_helper(bpf_helpers.GET_CURRENT_COMM, [destination, I64(COMM_SIZE)], name="comm_status")
        elif node.name == "probe" and self.program_plan.target.wildcard:
            self._expanded_probe_name(destination)
        elif node.name == "probe" and self.program_plan.target.rate_parameter:  # bpfrun knows the rate
            name = f"{schema.PROBE_NAME_GLOBAL}{self.plan.programs.index(self.program_plan)}"
            self.bpf.copy_bytes(destination, self.global_pointer(name), schema.PROBE_NAME_SIZE)
        elif node.name == "probe":
            name = self.program_plan.target.name.encode()
            self.bpf.store_bytes(destination, name, storage.size_of(self.types[node]))
        elif node.name in ("kstack", "ustack"):
            self._take_stack(self.types[node], destination)
        elif node.name == "func" and isinstance(self.types[node], Symbol):  # a kprobe's function
            address = self.bpf.call_helper(bpf_helpers.GET_FUNC_IP, [self.bpf.context], name="func_ip")
            self._store_symbol("ksym", address, destination)
        elif node.name == "func" and self.program_plan.target.wildcard:
            self._expanded_probe_name(destination, schema.FUNCTION_NAME_KEY)
        elif node.name == "func":
            name = function_name(self.program_plan.target).encode()
            self.bpf.store_bytes(destination, name, storage.size_of(self.types[node]))
        elif node.name == "probetype":
            provider = self.program_plan.target.provider
            kind = "special" if provider in (schema.BEGIN, schema.END) else provider
            self.bpf.store_bytes(destination, kind.encode(), storage.size_of(self.types[node]))
        else:
            self.bpf.store_i64(self.visit_Builtin(node), destination)

    def _usermode(self) -> ir.Value:
        """1 when the interrupted code ran in user mode: the privilege level in the saved cs."""
        provider = self.program_plan.target.provider
        if provider in USERMODE_ALWAYS:
            return I64(1)
        if provider not in USERMODE_FROM_REGISTERS:
            return I64(0)
        cs = self.bpf.load_i64(self.bpf.context, REGISTERS["cs"], name="cs")
        return self.bpf.as_i64(self.ir.icmp_unsigned("==", self.ir.and_(cs, I64(3)), I64(3)))

    def _usdt_argument(self, index: int) -> ir.Value:
        """USDT argument `index` of the site that fired, as bpfrun described it in the spec map
        (common/schema.py's USDT_SPEC_SIZE): a constant, a register, or memory at a register plus
        an offset; then cut to its size and extended by its sign. 0 when the site has fewer
        (their entries are zeros: a constant 0)."""
        result = self.bpf.allocas.alloca(I64, name=f"usdt_arg{index}")
        self.bpf.store_i64(I64(0), result)
        key = self.memory.acquire(8)
        self.bpf.store_i64(self.bpf.call_helper(bpf_helpers.GET_ATTACH_COOKIE, [self.bpf.context], name="cookie"), key)
        spec = self.bpf.map_lookup(self.shared.usdt_specs, key)
        done = self.bpf.new_block("usdt_done")
        found = self.bpf.new_block("usdt_found")
        self.ir.cbranch(self.bpf.is_null(spec), done, found)
        self.ir.position_at_end(found)
        entry = 8 + 16 * index
        header = self.ir.load(self.bpf.at(spec, entry), typ=I64, name="header", align=8)
        kind = self.ir.and_(header, I64(0xFF), name="kind")
        size = self.ir.ashr(self.ir.shl(header, I64(48)), I64(56), name="size")  # the i8 at byte 1
        register_offset = self.ir.and_(self.ir.lshr(header, I64(16)), I64(0xFFFF), name="register_offset")
        value = self.bpf.load_i64(spec, entry + 8, name="value")
        slot = self.memory.acquire(8)
        constant, from_register = self.bpf.new_block("usdt_constant"), self.bpf.new_block("usdt_register")
        sized = self.bpf.new_block("usdt_sized")
        self.ir.cbranch(self.ir.icmp_unsigned("==", kind, I64(schema.USDT_CONSTANT)), constant, from_register)
        self.ir.position_at_end(constant)
        self.bpf.store_i64(value, slot)
        self.ir.branch(sized)
        self.ir.position_at_end(from_register)
        registers = self.ir.ptrtoint(self.bpf.context, I64)
        register = kernel_data.as_address(self.bpf, self.ir.add(registers, register_offset))
        self.bpf.store_i64(I64(0), slot)
        kernel_data.probe_read(self.bpf, slot, 8, register, KERNEL)
        with self.ir.if_then(self.ir.icmp_unsigned("==", kind, I64(schema.USDT_MEMORY))):
            address = kernel_data.as_address(self.bpf, self.ir.add(self.bpf.load_i64(slot), value))
            self.bpf.store_i64(I64(0), slot)
            kernel_data.probe_read(self.bpf, slot, 8, address, USER)
        self.ir.branch(sized)
        self.ir.position_at_end(sized)
        raw = self.bpf.load_i64(slot)
        magnitude = self.ir.select(self.ir.icmp_signed("<", size, I64(0)), self.ir.neg(size), size)
        shift = self.ir.sub(I64(64), self.ir.mul(magnitude, I64(8)), name="shift")
        shift = self.ir.and_(shift, I64(63))  # size 8: no shift
        left = self.ir.shl(raw, shift)
        extended = self.ir.select(self.ir.icmp_signed("<", size, I64(0)), self.ir.ashr(left, shift), self.ir.lshr(left, shift))
        self.bpf.store_i64(extended, result)
        self.ir.branch(done)
        self.ir.position_at_end(done)
        return self.bpf.load_i64(result, name=f"arg{index}")

    def _take_stack(self, stack: Stack, destination: ir.Value) -> None:
        """A stack value: the id bpf_get_stackid gives (negative when it could not take one), then
        the process of a user stack, whose addresses bpfrun resolves in that process."""
        user = stack.kind == "ustack"
        flags = I64(bpf_helpers.F_USER_STACK if user else 0)
        stack_id = self.bpf.call_helper(bpf_helpers.GET_STACKID, [self.bpf.context, self.shared.stacks, flags], name="stack_id")
        self.bpf.store_i64(stack_id, destination)
        process = self.ir.lshr(self.bpf.call_helper(bpf_helpers.GET_CURRENT_PID_TGID, [], name="pid_tgid"), I64(32))
        self.bpf.store_i64(process if user else I64(0), destination, 8)

    def _symbol(self, node: ast.Call, destination: ir.Value) -> None:
        self._store_symbol(node.name, self.value(node.args[0]), destination)

    def _store_symbol(self, kind: str, address: ir.Value, destination: ir.Value) -> None:
        """ksym(addr), usym(addr): the address, then the process of a user address."""
        self.bpf.store_i64(address, destination)
        if kind == "usym":
            pid_tgid = self.bpf.call_helper(bpf_helpers.GET_CURRENT_PID_TGID, [], name="pid_tgid")
            self.bpf.store_i64(self.ir.lshr(pid_tgid, I64(32)), destination, 8)
        else:
            self.bpf.store_i64(I64(0), destination, 8)

    def visit_Positional(self, node: ast.Positional) -> ir.Value:
        return self.load_global(f"{schema.INTEGER_ARGUMENT}{node.index}")

    def visit_PositionalCount(self, node: ast.PositionalCount) -> ir.Value:
        return self.load_global(schema.ARGUMENT_COUNT)

    def global_pointer(self, name: str) -> ir.Value:
        fields = {field.name: field.offset for field in self.plan.resources.globals.fields}
        return self.bpf.at(self.shared.globals, fields[name])

    def load_global(self, name: str) -> ir.Value:
        return self.bpf.load_i64(self.global_pointer(name), name=name)

    def _expanded_probe_name(self, destination: ir.Value, key_bits: int = 0) -> None:
        """The name of the attach point that fired, for a probe bpfrun expanded from a wildcard:
        bpfrun attaches each with a cookie (a tracepoint's id) and maps the cookie to its name,
        and, with FUNCTION_NAME_KEY set, to its function's. (A tracepoint record's own
        common_type is not there for BPF: its first 8 bytes hold a pt_regs pointer.)"""
        key = self.memory.acquire(8)
        cookie = self.bpf.call_helper(bpf_helpers.GET_ATTACH_COOKIE, [self.bpf.context], name="cookie")
        self.bpf.store_i64(self.ir.or_(cookie, I64(key_bits)) if key_bits else cookie, key)
        name = self.bpf.map_lookup(self.shared.probe_names, key)
        with self.ir.if_else(self.bpf.is_null(name)) as (missing, found):
            with missing:
                self.bpf.zero(destination, schema.PROBE_NAME_SIZE)
            with found:
                self.bpf.copy(destination, name, schema.PROBE_NAME_SIZE)

    def visit_Variable(self, node: ast.Variable) -> ir.Value:
        binding = self.bindings[node]
        slot = self.storage[binding]
        if storage.in_register(binding.type):
            return self.bpf.load_i64(slot, name=node.name[1:])
        return slot

    def visit_Map(self, node: ast.Map) -> ir.Value:
        return self.maps.read(node)

    def into_Map(self, node: ast.Map, destination: ir.Value) -> None:
        self.maps.read_into(node, destination)

    def visit_Call(self, node: ast.Call) -> ir.Value | None:
        if node.name in TYPE_PREDICATES:
            return I64(int(_type_predicate(node, self.types[node.args[0]])))
        generate_call = getattr(self, f"call_{node.name}", None)
        assert generate_call is not None, f"no code for call {node.name}"
        return generate_call(node)

    def visit_Unop(self, node: ast.Unop) -> ir.Value:
        if node.op == "&":  # &$x: where the variable is stored (its slot escapes: never a register)
            slot, _ = self.variable_slot(node.operand)
            return self.ir.ptrtoint(slot, I64, name="address")
        operand = self.value(node.operand)
        if node.op == "*":  # a scalar where a pointer (or an address) points
            pointer, target = self.types[node.operand], self.types[node]
            size = 8 if isinstance(target, Pointer) else 1 if isinstance(target, Bool) else target.size
            space = USER if isinstance(pointer, Pointer) and pointer.user else KERNEL
            address = kernel_data.as_address(self.bpf, operand)
            return kernel_data.load_scalar(
                self.bpf, address, size, getattr(target, "signed", False), space, lambda: self.memory.acquire(8)
            )
        if node.op == "!":
            return self.bpf.as_i64(self.ir.icmp_unsigned("==", operand, I64(0)))
        result = self.ir.neg(operand, name="negated") if node.op == "-" else self.ir.not_(operand, name="inverted")
        operand_type = self.types[node.operand]
        if isinstance(operand_type, Int):  # at the operand's width, as bpftrace computes it
            result = self.bpf.extend(result, operand_type.bits, operand_type.signed)
        return result

    def visit_Binop(self, node: ast.Binop) -> ir.Value:
        if node.op in ("&&", "||"):
            return self._short_circuit(node)
        left_type = self.types[node.left]
        left, right = self.value(node.left), self.value(node.right)
        if not storage.in_register(left_type):  # strings, tuples, records: == and != only
            return self._memory_equal(node.op, left, right, left_type, self.types[node.right])
        signed = isinstance(left_type, Int) and left_type.signed
        op = node.op
        if op in ("==", "!=", "<", "<=", ">", ">="):
            compare = self.ir.icmp_signed if signed else self.ir.icmp_unsigned
            return self.bpf.as_i64(compare(op, left, right))
        if op in ("/", "%"):
            return self._fit(self.divide(left, right, signed, op, node), self.types[node])
        simple = {
            "+": self.ir.add,
            "-": self.ir.sub,
            "*": self.ir.mul,
            "&": self.ir.and_,
            "|": self.ir.or_,
            "^": self.ir.xor,
            "<<": self.ir.shl,
            ">>": self.ir.ashr if signed else self.ir.lshr,
        }
        result = simple[op](left, right, name="result")
        if isinstance(self.types[node], Bool):  # true + true: a bool again
            return self.bpf.as_i64(self.bpf.truth(result))
        return self._fit(result, self.types[node])

    def _fit(self, value: ir.Value, t: Type) -> ir.Value:
        """Re-extend a result to its type's width (a constant-folded type narrower than 64 bits)."""
        if isinstance(t, Int) and t.bits < 64:
            return self.bpf.extend(value, t.bits, t.signed)
        return value

    def _short_circuit(self, node: ast.Binop) -> ir.Value:
        """`a && b` evaluates b only when a is true; `a || b` only when a is false."""
        left = self.bpf.truth(self.value(node.left))
        left_block = self.ir.block
        evaluate_right, joined = self.bpf.new_block("right"), self.bpf.new_block("logic")
        if node.op == "&&":
            self.ir.cbranch(left, evaluate_right, joined)
        else:
            self.ir.cbranch(left, joined, evaluate_right)
        self.ir.position_at_end(evaluate_right)
        right = self.bpf.truth(self.value(node.right))
        right_block = self.ir.block
        self.ir.branch(joined)
        self.ir.position_at_end(joined)
        result = self.ir.phi(bpf_helpers.I1, name="logic")
        result.add_incoming(ir.Constant(bpf_helpers.I1, node.op == "||"), left_block)
        result.add_incoming(right, right_block)
        return self.bpf.as_i64(result)

    def _memory_equal(self, op: str, left: ir.Value, right: ir.Value, left_type: Type, right_type: Type) -> ir.Value:
        """== and != on values in memory. Strings are NUL-padded and tuples have zeroed padding
        (and the same type, passes/convert.py made sure), so compare them 8 bytes at a time, the
        shorter string reading as zeros past its end."""
        left_size, right_size = storage.size_of(left_type), storage.size_of(right_type)
        differ = I64(0)  # the bits in which they differ, word by word, or'ed together
        for offset in range(0, max(left_size, right_size), 8):
            left_chunk = self.bpf.load_i64(left, offset, name="chunk") if offset < left_size else I64(0)
            right_chunk = self.bpf.load_i64(right, offset, name="chunk") if offset < right_size else I64(0)
            differ = self.ir.or_(differ, self.ir.xor(left_chunk, right_chunk))
            if max(left_size, right_size) > 64:  # one word after the other (strings.in_order)
                differ = strings.in_order(self.bpf, differ)
        return self.bpf.as_i64(self.ir.icmp_unsigned("==" if op == "==" else "!=", differ, I64(0)))

    def divide(
        self, left: ir.Value, right: ir.Value, signed: bool, op: str = "/", node: ast.Node | None = None
    ) -> ir.Value:
        """Division and remainder. By 0 they give 1, as bpftrace's do (it also warns; bpftc does not
        yet): the divisor is replaced by 1 and the result by 1, because dividing by 0 is undefined
        in LLVM IR, which would let LLVM drop checks elsewhere (a map lookup's NULL check).

        Signed ones go through unsigned, because LLVM's BPF backend aborts on sdiv/srem unless the
        CPU is v4 (kernel 6.6), which would exclude older production kernels."""
        by_zero = self.ir.icmp_unsigned("==", right, I64(0), name="by_zero")
        if node in self.plan.event_ids:  # warn at run time, as bpftrace does
            with self.ir.if_then(by_zero):
                self._send(node, [])
        right = self.ir.select(by_zero, I64(1), right, name="divisor")
        unsigned = self.ir.udiv if op == "/" else self.ir.urem
        if signed:
            left_negative = self.ir.icmp_signed("<", left, I64(0))
            right_negative = self.ir.icmp_signed("<", right, I64(0))
            magnitude = unsigned(self._absolute(left, left_negative), self._absolute(right, right_negative))
            negative = self.ir.xor(left_negative, right_negative) if op == "/" else left_negative
            result = self.ir.select(negative, self.ir.neg(magnitude), magnitude, name="quotient")
        else:
            result = unsigned(left, right, name="quotient")
        return self.ir.select(by_zero, I64(1), result)

    def _absolute(self, value: ir.Value, negative: ir.Value) -> ir.Value:
        return self.ir.select(negative, self.ir.neg(value), value)

    def visit_Conditional(self, node: ast.Conditional) -> ir.Value:
        t = self.types[node]
        if not storage.in_register(t):
            return self.in_memory(node)
        condition = self.bpf.truth(self.value(node.condition))
        with self.ir.if_else(condition) as (then, otherwise):
            with then:
                then_value, then_block = self.value(node.then), self.ir.block
            with otherwise:
                otherwise_value, otherwise_block = self.value(node.otherwise), self.ir.block
        result = self.ir.phi(I64, name="conditional")
        result.add_incoming(then_value, then_block)
        result.add_incoming(otherwise_value, otherwise_block)
        return result

    def into_Conditional(self, node: ast.Conditional, destination: ir.Value) -> None:
        condition = self.bpf.truth(self.value(node.condition))
        with self.ir.if_else(condition) as (then, otherwise):
            with then:
                self.into(node.then, destination)
            with otherwise:
                self.into(node.otherwise, destination)

    def visit_Cast(self, node: ast.Cast) -> ir.Value:
        target, source = self.types[node], self.types[node.operand]
        if not storage.in_register(target):
            return self.in_memory(node)
        value = self.value(node.operand)
        if isinstance(source, Array):  # its bytes as one integer (passes/check.py: same size, at most 8)
            value = self.bpf.load_i64(value)
        if isinstance(target, Bool) and not isinstance(source, Bool):
            return self.bpf.as_i64(self.bpf.truth(value))
        if isinstance(target, Int):
            return self.bpf.extend(value, target.bits, target.signed)
        return value

    def into_Cast(self, node: ast.Cast, destination: ir.Value) -> None:
        target, source = self.types[node], self.types[node.operand]
        if storage.in_register(target):
            self.bpf.store_i64(self.visit_Cast(node), destination)
        elif isinstance(target, Array) and storage.in_register(source):  # an integer's bytes
            bits = 8 * storage.sizeof(target)
            value = self.value(node.operand)
            if bits < 64:  # the padding after the array stays zero: arrays compare 8 bytes at a time
                value = self.ir.and_(value, I64((1 << bits) - 1))
            self.bpf.store_i64(value, destination)
        else:
            self._convert(self.value(node.operand), source, destination, target)

    def _convert(self, source: ir.Value, source_type: Type, destination: ir.Value, target: Type) -> None:
        """Write a stored value of `source_type` at `destination` as a `target`: strings cut or
        padded, tuple and record fields one by one."""
        if source_type == target:
            self.bpf.copy(destination, source, storage.size_of(target))
        elif storage.in_register(target):
            value = self.bpf.load_i64(source)
            if isinstance(target, Int):
                value = self.bpf.extend(value, target.bits, target.signed)
            self.bpf.store_i64(value, destination)
        elif isinstance(target, String):
            size, source_size = storage.size_of(target), storage.size_of(source_type)
            self.bpf.copy(destination, source, min(size, source_size))
            self.bpf.zero(destination, size, start=min(size, source_size))
            if target.size < source_type.size:  # cut short: keep a NUL at the end
                self.ir.store(ir.Constant(bpf_helpers.I8, 0), self.bpf.at(destination, target.size - 1))
        else:
            source_layout, target_layout = storage.layout_of(source_type), storage.layout_of(target)
            for position, (field, element) in enumerate(zip(target_layout.fields, _elements(target))):
                source_index = _source_index(source_type, target, position)
                source_field = source_layout.fields[source_index]
                self._convert(
                    self.bpf.at(source, source_field.offset),
                    _elements(source_type)[source_index],
                    self.bpf.at(destination, field.offset),
                    element,
                )

    def visit_Field(self, node: ast.Field) -> ir.Value:
        if self.resolution.struct_of(self.types[node.operand]) is not None:
            return self._struct_field(node)
        return self._member(node, node.operand, _member_index(self.types[node.operand], node.name))

    def into_Field(self, node: ast.Field, destination: ir.Value) -> None:
        t = self.types[node]
        if self.resolution.struct_of(self.types[node.operand]) is not None and not storage.in_register(t):
            address, space = self._field_address(node)
            size = storage.sizeof(t)
            self.bpf.zero(destination, storage.size_of(t))
            kernel_data.probe_read(self.bpf, destination, size, address, KERNEL if space == CONTEXT else space)
        elif storage.in_register(t):
            self.bpf.store_i64(self.visit_Field(node), destination)
        else:
            self.bpf.copy(destination, self.visit_Field(node), storage.size_of(t))

    # Kernel data: fields of structs where they are (bpftc/codegen/kernel_data.py)

    def _struct_field(self, node: ast.Field) -> ir.Value:
        t = self.types[node]
        if not storage.in_register(t):
            return self.in_memory(node)
        field = self._struct_layout(node.operand).fields[node.name]
        temporary = lambda: self.memory.acquire(8)  # noqa: E731
        if field.bitfield:
            return self._bitfield(node, field, temporary())
        address, space = self._field_address(node)
        if field.data_loc:  # u32: the string's length << 16 | its offset in the record
            location = kernel_data.load_scalar(self.bpf, address, 4, False, space, temporary)
            return kernel_data.context_plus(self.bpf, self.ir.and_(location, I64(0xFFFF)))
        size = 1 if isinstance(t, Bool) else 8 if isinstance(t, Pointer) else t.size
        return kernel_data.load_scalar(self.bpf, address, size, getattr(t, "signed", False), space, temporary)

    def _bitfield(self, node: ast.Field, field, slot: ir.Value) -> ir.Value:
        base, space, layout, field = self._field_access(node)
        space = KERNEL if space == CONTEXT else space
        return self.shared.kernel_data.read_bitfield(self.bpf, base, layout, field, space, slot)

    def _field_address(self, node: ast.Field) -> tuple[ir.Value, str]:
        """Where the field is, and in which memory (kernel_data.CONTEXT, KERNEL or USER)."""
        base, space, layout, field = self._field_access(node)
        if layout.btf_id and space == CONTEXT:  # a relocated offset: LLVM may not fold it into a load
            space = KERNEL
        return self.shared.kernel_data.field_address(self.bpf, base, layout, field), space

    def _field_access(self, node: ast.Field):
        """(base address, its memory, struct layout, field) of a field read. LLVM relocates a read
        only from a named struct: a field of a struct that has no name of its own (atomic_t's,
        a union member's) is read as a path from the named struct that holds it; reached
        through a pointer, at the offset compiled against."""
        layout = self._struct_layout(node.operand)
        field = layout.fields[node.name]
        if self._unnamed(layout) and isinstance(node.operand, ast.Field):
            base, space, outer, outer_field = self._field_access(node.operand)
            if outer.btf_id and not outer_field.bitfield:
                path = outer_field.core_path + field.core_path
                return base, space, outer, replace(field, offset=outer_field.offset + field.offset, core_path=path)
        base, space = self._struct_base(node.operand)
        if self._unnamed(layout):
            layout = replace(layout, btf_id=0)
        return base, space, layout, field

    def _unnamed(self, layout) -> bool:
        return bool(layout.btf_id) and not self.resolution.kernel.btf.type(layout.btf_id).name

    def _struct_base(self, operand: ast.Node) -> tuple[ir.Value, str]:
        t = self.types[operand]
        if isinstance(t, Pointer):
            return kernel_data.as_address(self.bpf, self.value(operand)), USER if t.user else KERNEL
        if isinstance(operand, ast.Unop):  # (*pointer).field
            pointer = self.types[operand.operand]
            return kernel_data.as_address(self.bpf, self.value(operand.operand)), USER if pointer.user else KERNEL
        if _is_args(operand):  # the tracepoint's record
            return self.bpf.context, CONTEXT
        if isinstance(operand, ast.Index):  # a struct in an array, or where a pointer points
            return self._element_address(operand, self.resolution.struct_of(t).size)
        return self._field_address(operand)  # a struct inside a struct

    def _struct_layout(self, operand: ast.Node):
        if isinstance(operand, ast.Unop):
            operand = operand.operand
        if _is_args(operand):  # this attach point's own layout
            return args_layout(self.program_plan.target, self.resolution.kernel)
        return self.resolution.struct_of(self.types[operand])

    def visit_Index(self, node: ast.Index) -> ir.Value:
        operand = self.types[node.operand]
        if isinstance(operand, String) and not _is_struct_field(node.operand, self.types, self.resolution):
            return self._array_element(node, Array(INT8, operand.size))  # a character of a string held
        if isinstance(operand, Array) and not _is_struct_field(node.operand, self.types, self.resolution):
            return self._array_element(node, operand)
        if isinstance(operand, (Pointer, Array, String)):  # an element in memory (passes/check.py)
            return self._element(node, operand)
        return self._member(node, node.operand, constant_value(node.index))

    def _element(self, node: ast.Index, operand) -> ir.Value:
        """p[i] where pointer p points, or a[i] of an array field of a kernel struct."""
        element = self.types[node]
        size = 8 if isinstance(element, Pointer) else element.size
        address, space = self._element_address(node, size)
        signed = getattr(element, "signed", False)
        return kernel_data.load_scalar(self.bpf, address, size, signed, space, lambda: self.memory.acquire(8))

    def _array_element(self, node: ast.Index, array: Array) -> ir.Value:
        """a[i] of an array value the program holds; an index past its end reads 0."""
        base = self.value(node.operand)
        size = storage.sizeof(array.element)
        position = constant_value(node.index)
        if position is not None:
            return self._load_element(self.bpf.at(base, position * size), array.element)
        index = self.value(node.index)
        result = self.bpf.allocas.alloca(I64, name="element")
        self.ir.store(I64(0), result)
        with self.ir.if_then(self.ir.icmp_unsigned("<", index, I64(array.length))):
            address = self.ir.gep(base, [self.ir.mul(index, I64(size))], source_etype=bpf_helpers.I8)
            self.ir.store(self._load_element(address, array.element), result)
        return self.ir.load(result)

    def _load_element(self, address: ir.Value, element: Type) -> ir.Value:
        loaded = self.ir.load(address, typ=ir.IntType(8 * storage.sizeof(element)), align=1)
        signed = isinstance(element, Int) and element.signed
        return self.ir.sext(loaded, I64) if signed else self.ir.zext(loaded, I64)

    def _element_address(self, node: ast.Index, size: int) -> tuple[ir.Value, str]:
        """Where p[i] or a struct's array field a[i] is, elements being `size` bytes apart."""
        operand = self.types[node.operand]
        if isinstance(operand, Pointer):
            base, space = self.value(node.operand), USER if operand.user else KERNEL
        else:
            address, space = self._field_address(node.operand)
            base = self.ir.ptrtoint(address, I64)
            space = KERNEL if space == CONTEXT else space
        offset = self.ir.mul(self.value(node.index), I64(size), name="offset")
        return kernel_data.as_address(self.bpf, self.ir.add(base, offset)), space

    def _member(self, node: ast.Node, operand: ast.Node, index: int) -> ir.Value:
        container = self.value(operand)
        field = storage.layout_of(self.types[operand]).fields[index]
        pointer = self.bpf.at(container, field.offset)
        if storage.in_register(self.types[node]):
            return self.bpf.load_i64(pointer, name="member")
        return pointer

    def visit_Tuple(self, node: ast.Tuple) -> ir.Value:
        return self.in_memory(node)

    def into_Tuple(self, node: ast.Tuple, destination: ir.Value) -> None:
        fields = storage.layout_of(self.types[node]).fields
        for element, field in zip(node.elements, fields):
            self.into(element, self.bpf.at(destination, field.offset))
        self._zero_tail(destination, fields, self.types[node])

    visit_Record = visit_Tuple

    def into_Record(self, node: ast.Record, destination: ir.Value) -> None:
        fields = storage.layout_of(self.types[node]).fields
        for value, field in zip(node.values, fields):
            self.into(value, self.bpf.at(destination, field.offset))
        self._zero_tail(destination, fields, self.types[node])

    def _zero_tail(self, destination: ir.Value, fields, t: Type) -> None:
        """An empty tuple still occupies its (0-byte, rounded to 8) slot: keep it initialised."""
        if not fields:
            self.bpf.zero(destination, storage.size_of(t))

    def visit_Increment(self, node: ast.Increment) -> ir.Value:
        target = node.target
        delta = I64(1 if node.op == "++" else -1)
        if isinstance(target, ast.Map):
            return self.maps.increment(target, delta, node.prefix)
        binding = self.bindings[target]
        slot = self.storage[binding]
        old = self.bpf.load_i64(slot, name="old")
        new = self._fit(self.ir.add(old, delta, name="new"), binding.type)
        self.bpf.store_i64(new, slot)
        return new if node.prefix else old

    def visit_Sizeof(self, node: ast.Sizeof) -> ir.Value:
        operand = node.operand
        t = type_of_spec(operand, self.types) if isinstance(operand, ast.TypeSpec) else self.types[operand]
        if isinstance(t, Struct):  # the size in the layout compiled against
            return I64(self.resolution.struct_of(t).size)
        return I64(storage.sizeof(t))

    def visit_Offsetof(self, node: ast.Offsetof) -> ir.Value:
        return I64(offset_of(node, self.resolution))

    def visit_BlockExpr(self, node: ast.BlockExpr) -> ir.Value | None:
        for statement in node.statements:  # its variables live as long as the enclosing statement
            self._allocate_declared(statement)
            self.visit(statement)
        return self.value(node.value) if node.value is not None else None

    # Calls

    def call_printf(self, node: ast.Call) -> None:
        self._send(node, node.args[1:])

    def call_print(self, node: ast.Call) -> None:
        event = self.plan.resources.events[self.plan.event_ids[node]]
        self._send(node, [] if isinstance(event, schema.PrintMapEvent) else node.args[:1])

    def call_clear(self, node: ast.Call) -> None:
        self._send(node, [])

    def call_time(self, node: ast.Call) -> None:
        self._send(node, [])

    def call_system(self, node: ast.Call) -> None:
        self._send(node, node.args[1:])

    call_cat = call_warnf = call_errorf = call_system

    def call_strftime(self, node: ast.Call) -> ir.Value:
        return self.value(node.args[1])  # the timestamp; bpfrun formats it

    call_zero = call_clear

    def call_exit(self, node: ast.Call) -> None:
        self._send(node, node.args[:1], default=I64(0))
        self.bpf.return_now()

    def call_pid(self, node: ast.Call) -> ir.Value:
        """pid(curr_ns): the process id as bpfrun's PID namespace sees it (init was desugared)."""
        return self._in_pid_namespace(thread=False)

    def call_tid(self, node: ast.Call) -> ir.Value:
        return self._in_pid_namespace(thread=True)

    def _in_pid_namespace(self, thread: bool) -> ir.Value:
        info = self.bpf.allocas.alloca(I64, name="pidns_info")  # struct bpf_pidns_info { u32 pid, tgid; }
        self.bpf.store_i64(I64(0), info)  # 0 when the task is not in that namespace
        dev, ino = self.load_global(schema.PIDNS_DEV), self.load_global(schema.PIDNS_INO)
        self.bpf.call_helper(bpf_helpers.GET_NS_CURRENT_PID_TGID, [dev, ino, info, I64(8)], name="pidns_status")
        both = self.bpf.load_i64(info, name="pidns")
        if thread:
            return self.ir.and_(both, I64(0xFFFFFFFF), name="ns_tid")
        return self.ir.lshr(both, I64(32), name="ns_pid")

    def call_nsecs(self, node: ast.Call) -> ir.Value:
        """nsecs(boot) and nsecs(tai); nsecs(monotonic) is the nsecs builtin."""
        (mode,) = node.args
        helper = bpf_helpers.KTIME_GET_BOOT_NS if mode.name == "boot" else bpf_helpers.KTIME_GET_TAI_NS
        return self.bpf.call_helper(helper, [], name=f"nsecs_{mode.name}")

    def call_strlen(self, node: ast.Call) -> ir.Value:
        (text,) = node.args
        return strings.strlen(self.bpf, self.value(text), self.types[text].size)

    def call_strcontains(self, node: ast.Call) -> ir.Value:
        haystack, needle = node.args
        sizes = (self.types[haystack].size, self.types[needle].size)
        return strings.contains(self.bpf, self.value(haystack), sizes[0], self.value(needle), sizes[1])

    def call_getopt(self, node: ast.Call) -> ir.Value:
        if storage.in_register(self.types[node]):
            return self.load_global(schema.OPTION + node.args[0].value.decode("utf-8", "surrogateescape"))
        return self.in_memory(node)

    def call___assert_failed(self, node: ast.Call) -> None:
        self._send(node, [])  # the message is the event's: no payload

    def call_static_assert(self, node: ast.Call) -> None:
        """Decided at compile time (passes/check.py): nothing to run."""

    def call_strerror(self, node: ast.Call) -> ir.Value:
        return self.value(node.args[0])  # bpfrun names it

    call_signal_name = call_strerror
    call_syscall_name = call_cgroup_path = call_strerror

    def call_bswap(self, node: ast.Call) -> ir.Value:
        """The operand's bytes reversed at its own width (an 8-bit value is itself)."""
        bits = self.types[node].bits
        value = self.value(node.args[0])
        if bits == 8:
            return self.bpf.extend(value, 8, signed=False)
        narrow = self.ir.trunc(value, ir.IntType(bits)) if bits < 64 else value
        swapped = self.ir.bswap(narrow)
        return self.ir.zext(swapped, I64) if bits < 64 else swapped

    def call_strstr(self, node: ast.Call) -> ir.Value:
        haystack, needle = node.args
        sizes = (self.types[haystack].size, self.types[needle].size)
        return strings.index(self.bpf, self.value(haystack), sizes[0], self.value(needle), sizes[1])

    def call_strncmp(self, node: ast.Call) -> ir.Value:
        left, right, limit = node.args
        sizes = (self.types[left].size, self.types[right].size)
        limit_value = self.value(limit)
        return strings.differ(self.bpf, self.value(left), sizes[0], self.value(right), sizes[1], limit_value)

    def call_str(self, node: ast.Call) -> ir.Value:
        return self.in_memory(node)

    call_kstack = call_ustack = call_ksym = call_usym = call_str  # values in memory, see into_Call
    call_buf = call_macaddr = call_ntop = call_pton = call_str_concat = call_path = call_str

    def _formatted_bytes(self, node: ast.Call, destination: ir.Value) -> None:
        """buf(), macaddr(), ntop(): bytes from a string the program holds, from memory, or (an
        IPv4 address) an integer, laid out as common/layout.py's `bytes`."""
        t = self.types[node]
        self.bpf.zero(destination, storage.size_of(t))
        if t.kind == "inet":
            family = constant_value(node.args[0]) if len(node.args) == 2 else _address_family(self.types[node.args[0]])
            self.bpf.store_i64(I64(family), destination)
            start, length = 8, 4 if family == 2 else 16
        else:
            start, length = (8, t.length) if t.kind == "buffer" else (0, 6)
            if t.kind == "buffer" and len(node.args) == 2 and constant_value(node.args[1]) is None:
                # a length known when the program runs: at most the buffer's (an unsigned compare)
                asked = self.value(node.args[1])
                length = self.ir.select(self.ir.icmp_unsigned(">", asked, I64(t.length)), I64(t.length), asked)
            if t.kind == "buffer":
                self.bpf.store_i64(length if isinstance(length, ir.Value) else I64(length), destination)
        source, source_type = node.args[-1] if node.name == "ntop" else node.args[0], None
        source_type = self.types[source]
        target = self.bpf.at(destination, start)
        if isinstance(source_type, (String, Array)):  # bytes the program holds
            self.bpf.copy_bytes(target, self.value(source), min(t.length if t.kind == "buffer" else length, storage.sizeof(source_type)))
        elif isinstance(length, ir.Value):  # a length the program computed
            address = kernel_data.as_address(self.bpf, self.value(source))
            size = self.ir.trunc(length, bpf_helpers.I32)
            kernel_data.probe_read(self.bpf, target, size, address, self._string_space(source_type))
        elif node.name == "ntop" and isinstance(source_type, Int):  # the address itself, in network order
            self.ir.store(self.ir.trunc(self.value(source), bpf_helpers.I32), target, align=8)
        else:
            address = kernel_data.as_address(self.bpf, self.value(source))
            kernel_data.probe_read(self.bpf, target, length, address, self._string_space(source_type))

    def call_join(self, node: ast.Call) -> None:
        """The strings the array points to, read up to its first NULL pointer straight into the
        event's record (schema.JoinEvent), their count first."""
        event_id = self.plan.event_ids[node]
        event = self.plan.resources.events[event_id]
        array = self.value(node.args[0])
        space = self._string_space(self.types[node.args[0]])
        record = self.bpf.ringbuf_reserve(self.shared.ring_buffer, schema.EVENT_HEADER + 8 + event.count * event.size)
        with self.ir.if_else(self.bpf.is_null(record)) as (full, reserved):
            with full:
                self._count_lost()
            with reserved:
                self.bpf.store_i64(I64(event_id), record)
                self.bpf.store_i64(I64(0), record, schema.EVENT_HEADER)
                slot = self.memory.acquire(8)
                done = self.bpf.new_block("join_done")
                for index in range(event.count):
                    self.bpf.store_i64(I64(0), slot)
                    element = kernel_data.as_address(self.bpf, self.ir.add(array, I64(8 * index)))
                    kernel_data.probe_read(self.bpf, slot, 8, element, space)
                    pointer = self.bpf.load_i64(slot, name="element")
                    next_block = self.bpf.new_block("join_next")
                    self.ir.cbranch(self.ir.icmp_unsigned("==", pointer, I64(0)), done, next_block)
                    self.ir.position_at_end(next_block)
                    destination = self.bpf.at(record, schema.EVENT_HEADER + 8 + index * event.size)
                    kernel_data.read_string_raw(self.bpf, destination, event.size, kernel_data.as_address(self.bpf, pointer), space)
                    self.bpf.store_i64(I64(index + 1), record, schema.EVENT_HEADER)
                self.ir.branch(done)
                self.ir.position_at_end(done)
                self.bpf.ringbuf_submit(record)

    def call_uaddr(self, node: ast.Call) -> ir.Value:
        """The address the probe fired at, plus where NAME is from there (bpfrun, on the host)."""
        name = f"{schema.USER_ADDRESS}{self.plan.programs.index(self.program_plan)}_{node.args[0].value.decode()}"
        here = self.bpf.call_helper(bpf_helpers.GET_FUNC_IP, [self.bpf.context], name="func_ip")
        return self.ir.add(here, self.load_global(name), name="uaddr")

    def call_kaddr(self, node: ast.Call) -> ir.Value:
        return self.load_global(schema.KERNEL_ADDRESS + node.args[0].value.decode())

    def call_strcap(self, node: ast.Call) -> ir.Value:
        return I64(self.types[node.args[0]].size)

    def call_default_str_length(self, node: ast.Call) -> ir.Value:
        return I64(self.resolution.string_size)

    def call_reg(self, node: ast.Call) -> ir.Value:
        name = node.args[0].value.decode()
        return self.bpf.load_i64(self.bpf.context, REGISTERS[name], name=f"reg_{name}")

    def into_Call(self, node: ast.Call, destination: ir.Value) -> None:
        if node.name == "getopt" and not storage.in_register(self.types[node]):  # a string option
            name = schema.OPTION + node.args[0].value.decode("utf-8", "surrogateescape")
            self.bpf.copy_bytes(destination, self.global_pointer(name), schema.PARAMETER_STRING_SIZE)
            return
        if node.name in ("kstack", "ustack"):
            self._take_stack(self.types[node], destination)
            return
        if node.name in ("ksym", "usym"):
            self._symbol(node, destination)
            return
        if node.name in ("buf", "macaddr", "ntop"):
            self._formatted_bytes(node, destination)
            return
        if node.name == "path":  # bpf_d_path writes the path, NUL-terminated, cut to the size
            size = self.types[node].size
            self.bpf.zero(destination, storage.size_of(self.types[node]))
            pointer = kernel_data.as_address(self.bpf, self.value(node.args[0]))
            self.bpf.call_helper(bpf_helpers.D_PATH, [pointer, destination, ir.Constant(bpf_helpers.I32, size)], name="path")
            return
        if node.name == "str_concat":
            (left, right), t = node.args, self.types[node]
            self.bpf.zero(destination, storage.size_of(t))
            left_size, right_size = self.types[left].size, self.types[right].size
            strings.concatenate(self.bpf, destination, self.value(left), left_size, self.value(right), right_size)
            return
        if node.name == "pton":  # a constant: the literal's bytes
            address = address_bytes(node.args[0])
            self.bpf.store_bytes(destination, address, storage.size_of(self.types[node]))
            return
        if node.name != "str":
            self.bpf.store_i64(self.visit_Call(node), destination)
            return
        parameter = parameter_offset(node.args[0])
        source_type = self.types[node.args[0]]
        if parameter is None and isinstance(source_type, (Pointer, Int)):  # str() of an address: read memory
            limit = self.value(node.args[1]) if len(node.args) == 2 else None
            address = kernel_data.as_address(self.bpf, self.value(node.args[0]))
            size = self.types[node].size
            kernel_data.read_string(self.bpf, destination, size, limit, address, self._string_space(source_type))
            return
        if parameter is None:  # str() of a string
            self.into(node.args[0], destination)
            if len(node.args) == 2:
                strings.truncate(self.bpf, destination, self.types[node].size, self.value(node.args[1]))
            return
        index, offset = parameter
        size = schema.PARAMETER_STRING_SIZE
        source = self.bpf.at(self.global_pointer(f"{schema.STRING_ARGUMENT}{index}"), min(offset, size - 1))
        self.bpf.copy_bytes(destination, source, max(size - offset, 1))
        self.bpf.zero(destination, size, start=layout.aligned(max(size - offset, 1), 8))

    def _string_space(self, t: Type) -> str:
        """Which memory str() reads: a pointer says; a plain integer is an address in user memory
        in a uprobe's program, in kernel memory elsewhere."""
        if isinstance(t, Pointer):
            return USER if t.user else KERNEL
        return USER if self.program_plan.target.provider in ("uprobe", "uretprobe", "usdt") else KERNEL

    def call_delete(self, node: ast.Call) -> ir.Value:
        return self.maps.delete(node.args[0], node.args[1] if len(node.args) > 1 else None)

    def call_len(self, node: ast.Call) -> ir.Value:
        """len(@m): bpf_for_each_map_elem returns how many elements it visited, and a callback
        that returns 0 visits them all."""
        visit_all = self.shared.count_callback()
        map_variable = self.shared.maps[node.args[0].name]
        return self.bpf.call_helper(
            bpf_helpers.FOR_EACH_MAP_ELEM, [map_variable, visit_all, bpf_helpers.NULL, I64(0)], name="length"
        )

    def call_has_key(self, node: ast.Call) -> ir.Value:
        return self.maps.has_key(node.args[0], node.args[1])

    def call_find(self, node: ast.Call) -> ir.Value:
        return self.maps.find(*node.args)

    def _send(self, node: ast.Node, args: list[ast.Node], default: ir.Value | None = None) -> None:
        """Reserve the event's record in the ring buffer and write its id and payload straight into
        it; when the ring buffer is full, count the record as lost instead.

        Integer arguments are computed before the reservation, as bpftrace computes them before
        it sends the record: events they raise (a division by zero) come first."""
        event_id = self.plan.event_ids[node]
        payload = _payload_layout(self.plan.resources.events[event_id])
        size = schema.EVENT_HEADER + payload.size
        scalars = {arg: self.value(arg) for arg in args if storage.in_register(self.types[arg])}
        record = self.bpf.ringbuf_reserve(self.shared.ring_buffer, size)
        with self.ir.if_else(self.bpf.is_null(record)) as (full, reserved):
            with full:
                self._count_lost()
            with reserved:
                self.bpf.store_i64(I64(event_id), record)
                for arg, field in zip(args, payload.fields):
                    destination = self.bpf.at(record, schema.EVENT_HEADER + field.offset)
                    if arg in scalars:
                        self.bpf.store_i64(scalars[arg], destination)
                    else:
                        self.into(arg, destination)
                if default is not None and not args:
                    self.bpf.store_i64(default, record, schema.EVENT_HEADER)
                self.bpf.ringbuf_submit(record)

    def _count_lost(self) -> None:
        key = self.memory.acquire(8)
        self.bpf.store_i64(I64(0), key)
        counter = self.bpf.map_lookup(self.shared.lost, key)
        with self.ir.if_then(self.ir.icmp_unsigned("!=", counter, bpf_helpers.NULL)):
            self.bpf.add_atomic(counter, 0, I64(1))


class _Refused(Exception):
    """Generation of this program stopped at a reported error."""


def _is_args(node: ast.Node) -> bool:
    return isinstance(node, ast.Builtin) and node.name == "args"


def _type_predicate(node: ast.Call, argument: Type) -> bool:
    if node.name == "is_literal":
        return isinstance(node.args[0], (ast.String, ast.Bool)) or constant_value(node.args[0]) is not None
    return TYPE_PREDICATES[node.name](argument)


def _address_family(address: Type) -> int:
    """ntop(address): AF_INET6 for 16 bytes (pton() of an IPv6 address), else AF_INET."""
    return 10 if isinstance(address, Array) and address.length == 16 else 2


def _is_struct_field(node: ast.Node, types, resolution) -> bool:
    """A field of a kernel struct, which stays in kernel memory (read element by element)."""
    return isinstance(node, ast.Field) and resolution.struct_of(types.get(node.operand)) is not None


def _payload_layout(event: schema.EventSpec) -> layout.Layout:
    """The payload after an event's id, as common/schema.py defines it for each kind."""
    if isinstance(event, schema.FORMATTED_EVENTS):
        return event.args
    if isinstance(event, (schema.ExitEvent, schema.HelperErrorEvent)):
        return layout.packed(layout.TUPLE, [("", layout.I64)])
    if isinstance(event, schema.PrintValueEvent):
        return layout.packed(layout.TUPLE, [("", event.value)])
    if isinstance(event, schema.JoinEvent):
        return layout.packed(layout.TUPLE, [("", layout.U64)] + [("", Layout(layout.STRING, event.size))] * event.count)
    return layout.packed(layout.TUPLE, [])


def _elements(t: Type) -> tuple[Type, ...]:
    return t.elements if isinstance(t, (Tuple, Record)) else ()


def _source_index(source: Type, target: Type, position: int) -> int:
    """Which field of `source` becomes field `position` of `target`: the same name in records
    (whose fields may come in another order), the same position in tuples."""
    if isinstance(target, Record) and isinstance(source, Record):
        return source.names.index(target.names[position])
    return position


def _member_index(t: Type, name: str) -> int:
    if isinstance(t, Record):
        return t.names.index(name)
    return int(name)


