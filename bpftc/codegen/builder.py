"""BPF idioms on top of llvmlite's IRBuilder: helper calls, stack buffers, maps, the ring buffer.

Everything here is a fact about BPF or about LLVM's BPF backend, each quirk noted where handled.
Values in registers are i64; strings and records live in 8-byte-aligned stack buffers.
"""

from __future__ import annotations

import llvmlite
from llvmlite import ir

from bpftc.codegen.debuginfo import DebugInfo

assert not llvmlite.ir_layer_typed_pointers_enabled, "llvmlite was imported before bpftc (see bpftc/__init__.py)"

I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()

# Helper ids from include/uapi/linux/bpf.h (enum bpf_func_id).
MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
KTIME_GET_NS = 5
GET_CURRENT_PID_TGID = 14
GET_CURRENT_UID_GID = 15
GET_CURRENT_COMM = 16
RINGBUF_OUTPUT = 130

# Map types (enum bpf_map_type).
MAP_TYPE_HASH = 1
MAP_TYPE_PERCPU_HASH = 5
MAP_TYPE_RINGBUF = 27

BPF_ANY = 0
STACK_LIMIT = 512  # bytes of stack a BPF program may use (MAX_BPF_STACK)


def define_map(module: ir.Module, debug_info: DebugInfo, name: str, attributes: dict[str, int]) -> ir.GlobalVariable:
    """A BTF-defined map: a zeroed struct of pointers in `.maps`, described by debug info."""
    struct_type = ir.LiteralStructType([PTR] * len(attributes))
    variable = ir.GlobalVariable(module, struct_type, name)
    variable.initializer = ir.Constant(struct_type, None)
    variable.section = ".maps"
    variable.align = 8
    debug_info.describe_map(variable, attributes)
    return variable


def define_license(module: ir.Module) -> None:
    # GPL, because helpers such as bpf_probe_read_kernel are GPL-only for the verifier.
    text = b"GPL\0"
    variable = ir.GlobalVariable(module, ir.ArrayType(I8, len(text)), "LICENSE")
    variable.initializer = ir.Constant(variable.value_type, bytearray(text))
    variable.section = "license"


class BpfBuilder:
    """An IRBuilder positioned in one probe's function, plus that function's stack buffers."""

    def __init__(self, function: ir.Function) -> None:
        self.function = function
        self.entry = function.append_basic_block("entry")
        self.ir = ir.IRBuilder(function.append_basic_block("body"))
        self._allocas = ir.IRBuilder(self.entry)
        # Without lifetime markers LLVM gives every alloca its own stack slot, so their sum is what
        # the program needs; more than STACK_LIMIT makes LLVM abort the whole process.
        self.stack_bytes = 0

    @property
    def context(self) -> ir.Argument:
        return self.function.args[0]

    def finish(self) -> None:
        """Close the entry block (stack buffers only) and return 0 from where the body ends."""
        self._allocas.branch(self.function.basic_blocks[1])
        if not self.ir.block.is_terminated:
            self.ir.ret(I64(0))

    # Stack

    def buffer(self, size: int, name: str) -> ir.Value:
        """A zeroed stack buffer of `size` bytes (a multiple of 8), 8-byte aligned.

        Zeroed because the verifier rejects reads of uninitialised stack, and because padding bytes
        in a map key take part in the hash lookup.
        """
        assert size % 8 == 0, size
        self.stack_bytes += size
        slot = self._allocas.alloca(ir.ArrayType(I64, size // 8), name=name)
        slot.align = 8
        # llvmlite still gives an alloca a typed pointer type and checks loads and stores against
        # it; all our accesses are i64 at byte offsets, so the buffer is used as an opaque `ptr`.
        slot.type = PTR
        for index in range(size // 8):
            self.ir.store(I64(0), self.at(slot, index * 8), align=8)
        return slot

    def at(self, buffer: ir.Value, offset: int) -> ir.Value:
        if offset == 0:
            return buffer
        return self.ir.gep(buffer, [I64(offset)], source_etype=I8, name="field")

    def store_i64(self, value: ir.Value, buffer: ir.Value, offset: int) -> None:
        self.ir.store(value, self.at(buffer, offset), align=8)

    def load_i64(self, pointer: ir.Value, offset: int = 0, name: str = "value") -> ir.Value:
        return self.ir.load(self.at(pointer, offset), name=name, typ=I64, align=8)

    def copy(self, destination: ir.Value, source: ir.Value, size: int) -> None:
        """Copy `size` bytes (a multiple of 8) in i64 moves; BPF has no memcpy to call."""
        for offset in range(0, size, 8):
            self.store_i64(self.load_i64(source, offset, name="chunk"), destination, offset)

    # Helpers

    def call_helper(self, helper_id: int, args: list[ir.Value], name: str) -> ir.Value:
        """Call a BPF helper: the kernel resolves `call <id>`, so the callee is the id cast to a pointer."""
        callee = ir.Constant(I64, helper_id).inttoptr(PTR)
        callee.function_type = ir.FunctionType(I64, [arg.type for arg in args])
        return self.ir.call(callee, args, name=name)

    def map_lookup(self, map_variable: ir.Value, key: ir.Value) -> ir.Value:
        callee = ir.Constant(I64, MAP_LOOKUP_ELEM).inttoptr(PTR)
        callee.function_type = ir.FunctionType(PTR, [PTR, PTR])
        return self.ir.call(callee, [map_variable, key], name="element")

    def map_update(self, map_variable: ir.Value, key: ir.Value, value: ir.Value) -> None:
        self.call_helper(MAP_UPDATE_ELEM, [map_variable, key, value, I64(BPF_ANY)], name="updated")

    def map_delete(self, map_variable: ir.Value, key: ir.Value) -> None:
        self.call_helper(MAP_DELETE_ELEM, [map_variable, key], name="deleted")

    def ringbuf_output(self, ring_buffer: ir.Value, data: ir.Value, size: int) -> None:
        self.call_helper(RINGBUF_OUTPUT, [ring_buffer, data, I64(size), I64(0)], name="sent")

    # Control flow

    def if_not_null(self, pointer: ir.Value):
        return self.ir.if_then(self.ir.icmp_unsigned("!=", pointer, ir.Constant(PTR, None), name="found"))

    def return_if_zero(self, value: ir.Value) -> None:
        """End the probe here when `value` is 0 (a false predicate)."""
        with self.ir.if_then(self.ir.icmp_unsigned("==", value, I64(0), name="false")):
            self.ir.ret(I64(0))

    def return_now(self) -> None:
        """Return 0 here; code after this point in the source goes to an unreachable block."""
        self.ir.ret(I64(0))
        self.ir.position_at_end(self.function.append_basic_block("unreachable"))
