"""BPF idioms on top of llvmlite's IRBuilder: helper calls, memory moves, maps, the ring buffer.

Everything here is a fact about BPF or about LLVM's BPF backend, each quirk noted where handled.
Scalar values are i64 registers; other values live in memory (see codegen/memory.py) as
`common.layout` lays them out: runs of whole, 8-byte-aligned u64s.
"""

from __future__ import annotations

import llvmlite
from llvmlite import ir

from bpftc.codegen.debuginfo import DebugInfo

assert not llvmlite.ir_layer_typed_pointers_enabled, "llvmlite needs opaque pointers (see bpftc/__init__.py)"

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
NULL = ir.Constant(PTR, None)

# Helper ids from include/uapi/linux/bpf.h (enum bpf_func_id).
MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
KTIME_GET_NS = 5
GET_PRANDOM_U32 = 7
GET_SMP_PROCESSOR_ID = 8
GET_CURRENT_PID_TGID = 14
GET_CURRENT_UID_GID = 15
GET_CURRENT_COMM = 16
GET_STACKID = 27
GET_NUMA_NODE_ID = 42
GET_CURRENT_CGROUP_ID = 80
JIFFIES64 = 118
GET_ATTACH_COOKIE = 174
GET_FUNC_IP = 173
D_PATH = 147
KTIME_GET_BOOT_NS = 125
GET_NS_CURRENT_PID_TGID = 120
RINGBUF_RESERVE = 131
FOR_EACH_MAP_ELEM = 164
LOOP = 181  # bpf_loop (kernel 5.17)
MAP_LOOKUP_PERCPU_ELEM = 195
KTIME_GET_TAI_NS = 208
RINGBUF_SUBMIT = 132

# Map types (enum bpf_map_type).
MAP_TYPE_HASH = 1
MAP_TYPE_PERCPU_HASH = 5
MAP_TYPE_PERCPU_ARRAY = 6
MAP_TYPE_STACK_TRACE = 7
MAP_TYPE_LRU_HASH = 9
MAP_TYPE_LRU_PERCPU_HASH = 10
MAP_TYPE_RINGBUF = 27

BPF_ANY = 0
# Helpers whose result cannot change while a program runs (the current task's ids): marked as
# touching no memory, so that LLVM calls them once per run (`@s[tid]` in a predicate, the body and
# a delete() make one call, not three).
_SAME_RESULT_ALL_RUN = frozenset({GET_CURRENT_PID_TGID, GET_CURRENT_UID_GID})
_SAME_ALL_RUN = ("readnone", "nounwind")
F_USER_STACK = 1 << 8  # bpf_get_stackid: the user-space stack


def define_map(module: ir.Module, name: str, attribute_count: int) -> ir.GlobalVariable:
    """A BTF-defined map: a zeroed struct of one pointer per attribute in `.maps`. The attributes'
    values are set by `describe_map` (debug info), which may come later, once the sizes are known."""
    struct_type = ir.LiteralStructType([PTR] * attribute_count)
    variable = ir.GlobalVariable(module, struct_type, name)
    variable.initializer = ir.Constant(struct_type, None)
    variable.section = ".maps"
    variable.align = 8
    return variable


def describe_map(debug_info: DebugInfo, variable: ir.GlobalVariable, attributes: dict[str, int]) -> None:
    assert len(attributes) == len(variable.value_type.elements), attributes
    debug_info.describe_map(variable, attributes)


def define_license(module: ir.Module) -> None:
    # GPL, because helpers such as bpf_probe_read_kernel are GPL-only for the verifier.
    text = b"GPL\0"
    variable = ir.GlobalVariable(module, ir.ArrayType(I8, len(text)), "LICENSE")
    variable.initializer = ir.Constant(variable.value_type, bytearray(text))
    variable.section = "license"


class BpfBuilder:
    """An IRBuilder positioned in one probe's function; owns its entry block."""

    def __init__(self, function: ir.Function, helpers: set[int] | None = None, describe=None) -> None:
        self.function = function
        self.helpers = helpers if helpers is not None else set()  # the helper ids it calls
        self.describe = describe  # gives a function its debug info (BTF), as DebugInfo.describe_function
        self._slots: dict[str, ir.Value] = {}
        self.probe_context: ir.Value | None = None
        self.entry = function.append_basic_block("entry")
        body = function.append_basic_block("body")
        self.ir = ir.IRBuilder(body)
        self.allocas = ir.IRBuilder(self.entry)  # slots and setup that run once, before the body
        self.body = body

    @property
    def context(self) -> ir.Value:
        """The probe's context: its function's first argument, or in a for-map body (a callback)
        the probe's, passed through the callback's context."""
        return self.probe_context if self.probe_context is not None else self.function.args[0]

    def finish(self, guard: ir.Value | None = None) -> None:
        """Close the entry block and return 0 from where the body ends. With a `guard` (an i1
        computed in the entry block), the body runs only when it is true."""
        if guard is None:
            self.allocas.branch(self.body)
        else:
            leave = self.function.append_basic_block("leave")
            ir.IRBuilder(leave).ret(I64(0))
            self.allocas.cbranch(guard, self.body, leave)
        if not self.ir.block.is_terminated:
            self.ir.ret(I64(0))

    # Memory: pointers, u64 moves, copies

    def at(self, pointer: ir.Value, offset: int) -> ir.Value:
        if offset == 0:
            return pointer
        return self.ir.gep(pointer, [I64(offset)], source_etype=I8, name="field")

    def store_i64(self, value: ir.Value, pointer: ir.Value, offset: int = 0) -> None:
        self.ir.store(value, self.at(pointer, offset), align=8)

    def load_i64(self, pointer: ir.Value, offset: int = 0, name: str = "value") -> ir.Value:
        return self.ir.load(self.at(pointer, offset), name=name, typ=I64, align=8)

    def copy(self, destination: ir.Value, source: ir.Value, size: int) -> None:
        """Copy `size` bytes (a multiple of 8) in u64 moves; BPF has no memcpy to call."""
        assert size % 8 == 0, size
        for offset in range(0, size, 8):
            self.store_i64(self.load_i64(source, offset, name="chunk"), destination, offset)

    def copy_bytes(self, destination: ir.Value, source: ir.Value, size: int) -> None:
        """Copy `size` bytes from a source that may be unaligned (map value memory) to an aligned
        destination: u64 moves, then single bytes; the destination's last u64 is zero-padded."""
        whole = size // 8 * 8
        for offset in range(0, whole, 8):
            chunk = self.ir.load(self.at(source, offset), name="chunk", typ=I64, align=1)
            self.store_i64(chunk, destination, offset)
        if whole < size:
            self.store_i64(I64(0), destination, whole)
            for offset in range(whole, size):
                byte = self.ir.load(self.at(source, offset), name="byte", typ=I8, align=1)
                self.ir.store(byte, self.at(destination, offset), align=1)

    def zero(self, destination: ir.Value, size: int, start: int = 0) -> None:
        assert size % 8 == 0 and start % 8 == 0, (size, start)
        for offset in range(start, size, 8):
            self.store_i64(I64(0), destination, offset)

    def store_bytes(self, destination: ir.Value, data: bytes, size: int) -> None:
        """`data`, NUL-padded to `size` bytes (a multiple of 8), as u64 constants."""
        padded = data[:size].ljust(size, b"\0")
        for offset in range(0, size, 8):
            self.store_i64(I64(int.from_bytes(padded[offset : offset + 8], "little")), destination, offset)

    def add_in_place(self, pointer: ir.Value, offset: int, value: ir.Value) -> None:
        """*(u64 *)(pointer + offset) += value, for per-CPU elements: not atomic (a lock costs more
        than the rest of a count), so an update can be lost if a program that interrupts this one
        on the same CPU (a perf event in NMI context) updates the same element, as in bpftrace."""
        self.store_i64(self.ir.add(self.load_i64(pointer, offset), value, name="sum"), pointer, offset)

    def add_atomic(self, pointer: ir.Value, offset: int, value: ir.Value) -> None:
        self.ir.atomic_rmw("add", self.at(pointer, offset), value, "monotonic")

    # Helpers

    def call_helper(self, helper_id: int, args: list[ir.Value], name: str, returns: ir.Type = I64) -> ir.Value:
        """Call a BPF helper: the kernel resolves `call <id>`, so the callee is the id cast to a pointer."""
        self.helpers.add(helper_id)
        callee = ir.Constant(I64, helper_id).inttoptr(PTR)
        callee.function_type = ir.FunctionType(returns, [arg.type for arg in args])
        attributes = _SAME_ALL_RUN if helper_id in _SAME_RESULT_ALL_RUN else ()
        return self.ir.call(callee, args, name=name, attrs=attributes)

    def scratch_slot(self, name: str, size: int) -> ir.Value:
        """Stack bytes of the function's own for one purpose (a helper's context), made once."""
        if name not in self._slots:
            slot = self.allocas.alloca(ir.ArrayType(I64, (size + 7) // 8), name=name)
            slot.type = PTR  # an opaque pointer, as memory.py uses allocas
            self._slots[name] = slot
        return self._slots[name]

    def subprogram(self, suffix: str, arguments: list[ir.Type]) -> BpfBuilder:
        """A builder in a new function of the program's (in .text: a callback of bpf_loop...)."""
        module = self.function.module
        function = ir.Function(module, ir.FunctionType(I64, arguments), f"{self.function.name}_{suffix}_{len(module.functions)}")
        function.linkage = "internal"
        function.section = ".text"
        function.attributes.add("nounwind")
        if self.describe is not None:
            self.describe(function)
        return BpfBuilder(function, self.helpers, self.describe)

    def map_lookup(self, map_variable: ir.Value, key: ir.Value) -> ir.Value:
        return self.call_helper(MAP_LOOKUP_ELEM, [map_variable, key], name="element", returns=PTR)

    def map_update(self, map_variable: ir.Value, key: ir.Value, value: ir.Value, flags: int = BPF_ANY) -> ir.Value:
        return self.call_helper(MAP_UPDATE_ELEM, [map_variable, key, value, I64(flags)], name="updated")

    def map_delete(self, map_variable: ir.Value, key: ir.Value) -> ir.Value:
        return self.call_helper(MAP_DELETE_ELEM, [map_variable, key], name="deleted")

    def ringbuf_reserve(self, ring_buffer: ir.Value, size: int) -> ir.Value:
        return self.call_helper(RINGBUF_RESERVE, [ring_buffer, I64(size), I64(0)], name="record", returns=PTR)

    def ringbuf_submit(self, record: ir.Value) -> None:
        # No flags: the kernel wakes the reader up (BPF_RB_NO_WAKEUP would batch, at the cost of latency).
        self.call_helper(RINGBUF_SUBMIT, [record, I64(0)], name="submitted", returns=ir.VoidType())

    # Values

    def is_null(self, pointer: ir.Value) -> ir.Value:
        return self.ir.icmp_unsigned("==", pointer, NULL, name="missing")

    def truth(self, value: ir.Value) -> ir.Value:
        """An i64 as an i1: non-zero is true."""
        return self.ir.icmp_unsigned("!=", value, I64(0), name="true")

    def as_i64(self, bit: ir.Value) -> ir.Value:
        return self.ir.zext(bit, I64, name="bool")

    def extend(self, value: ir.Value, bits: int, signed: bool) -> ir.Value:
        """Keep the low `bits` of an i64 and extend them back to 64, by sign or by zeros."""
        if bits == 64:
            return value
        narrow = self.ir.trunc(value, ir.IntType(bits), name="narrow")
        return self.ir.sext(narrow, I64, name="wide") if signed else self.ir.zext(narrow, I64, name="wide")

    # Control flow

    def return_now(self) -> None:
        """Return 0 here; code after this point in the source goes to an unreachable block."""
        self.ir.ret(I64(0))
        self.ir.position_at_end(self.function.append_basic_block("unreachable"))

    def new_block(self, name: str) -> ir.Block:
        return self.function.append_basic_block(name)
