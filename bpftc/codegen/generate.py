"""Generate: the checked program → an LLVM module with one BPF function per attach point.

Consumes the program, the `Resolution` (types) and the `Plan` (maps, events, programs); produces an
`ir.Module`. Never re-checks: anything wrong here is a bug (an AssertionError).

Expression values: integers and bools are i64 registers (sign- or zero-extended); strings are
pointers to zeroed 8-byte-aligned stack buffers of `stored_size(type)` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from common.schema import MapSpec, is_per_cpu, kernel_key_fields
from common.types import BOOL, INT, STRING, UINT64, Type, record_offsets, stored_size

from bpftc import ast
from bpftc.arch import Arch
from bpftc.builtins import COMM_SIZE
from bpftc.codegen.builder import (
    GET_CURRENT_COMM,
    GET_CURRENT_PID_TGID,
    GET_CURRENT_UID_GID,
    I64,
    KTIME_GET_NS,
    MAP_TYPE_HASH,
    MAP_TYPE_PERCPU_HASH,
    MAP_TYPE_RINGBUF,
    PTR,
    STACK_LIMIT,
    BpfBuilder,
    define_license,
    define_map,
)
from bpftc.codegen.debuginfo import DebugInfo
from bpftc.diagnostics import Diagnostics
from bpftc.passes.resolve import Resolution, constant_value
from bpftc.passes.resources import Plan, ProgramPlan

TARGET_TRIPLE = "bpfel"
DATA_LAYOUT = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
RING_BUFFER_BYTES = 1 << 20  # a power of 2 and a multiple of the page size, as the kernel requires


@dataclass
class Generated:
    module: ir.Module
    stack_bytes: dict[ProgramPlan, int]  # stack each program needs


def generate(program: ast.Program, resolution: Resolution, plan: Plan, arch: Arch, file_name: str) -> Generated:
    module = ir.Module(name=file_name)
    module.triple = TARGET_TRIPLE
    module.data_layout = DATA_LAYOUT
    debug_info = DebugInfo(module, file_name)
    maps = {name: _define_script_map(module, debug_info, spec) for name, spec in plan.maps.items()}
    ring_buffer = None
    if plan.resources.event_map:
        attributes = {"type": MAP_TYPE_RINGBUF, "max_entries": RING_BUFFER_BYTES}
        ring_buffer = define_map(module, debug_info, plan.resources.event_map, attributes)
    define_license(module)
    stack_bytes = {}
    for program_plan in plan.programs:
        generator = _ProbeGenerator(module, program_plan, resolution, plan, maps, ring_buffer, arch)
        stack_bytes[program_plan] = generator.generate()
    debug_info.finish()
    return Generated(module, stack_bytes)


def check_stack(generated: Generated, diagnostics: Diagnostics) -> None:
    """Report programs that need more stack than BPF allows, before LLVM sees them."""
    for program_plan, size in generated.stack_bytes.items():
        if size > STACK_LIMIT:
            attach_point = program_plan.probe.attach_points[0]
            diagnostics.error(
                attach_point.span,
                f"this probe needs {size} bytes of BPF stack, more than the {STACK_LIMIT} the kernel allows "
                "(strings in printf() arguments and map keys take the most)",
            )


def _define_script_map(module: ir.Module, debug_info: DebugInfo, spec: MapSpec) -> ir.GlobalVariable:
    _, key_size = record_offsets(kernel_key_fields(spec))
    attributes = {
        "type": MAP_TYPE_PERCPU_HASH if is_per_cpu(spec) else MAP_TYPE_HASH,
        "max_entries": spec.max_entries,
        "key_size": key_size,
        "value_size": stored_size(spec.value),
    }
    return define_map(module, debug_info, spec.elf_name, attributes)


class _ProbeGenerator(ast.Visitor):
    """Generates one probe's function for one of its attach points."""

    def __init__(self, module, program_plan: ProgramPlan, resolution: Resolution, plan: Plan, maps, ring_buffer, arch):
        self.module = module
        self.program_plan = program_plan
        self.types = resolution.types
        self.plan = plan
        self.maps = maps
        self.ring_buffer = ring_buffer
        self.arch = arch
        function = ir.Function(module, ir.FunctionType(I64, [PTR]), program_plan.spec.program)
        function.section = program_plan.target.section
        function.attributes.add("nounwind")  # no .eh_frame: BPF has no unwinding
        self.bpf = BpfBuilder(function)
        self.ir = self.bpf.ir

    def generate(self) -> int:
        """Generate the function; return the bytes of stack it needs."""
        probe = self.program_plan.probe
        if probe.predicate is not None:
            self.bpf.return_if_zero(self.visit(probe.predicate))
        for statement in probe.body:
            self.visit(statement)
        self.bpf.finish()
        return self.bpf.stack_bytes

    # Statements

    def visit_ExprStatement(self, node: ast.ExprStatement) -> None:
        self.visit(node.expr)

    def visit_AssignMap(self, node: ast.AssignMap) -> None:
        spec = self.plan.maps[node.map.name]
        value = node.value
        if isinstance(value, ast.Call) and value.name == "count":
            self._increment(spec, self._key(spec, node.map))
        elif isinstance(value, ast.Call) and value.name == "hist":
            (argument,) = value.args
            bucket = self._log2_bucket(self.visit(argument), self.types[argument])
            self._increment(spec, self._key(spec, node.map, bucket=bucket))
        else:
            stored = self._stored_value(spec.value, self.visit(value), self.types[value])
            self.bpf.map_update(self.maps[spec.name], self._key(spec, node.map), stored)

    # Expressions

    def visit_Integer(self, node: ast.Integer) -> ir.Value:
        return I64(node.value & (1 << 64) - 1)

    def visit_String(self, node: ast.String) -> ir.Value:
        data = node.value.encode() + b"\0"
        buffer = self.bpf.buffer(stored_size(self.types[node]), name="string")
        padded = data + b"\0" * (-len(data) % 8)
        for offset in range(0, len(padded), 8):
            chunk = int.from_bytes(padded[offset : offset + 8], "little")
            self.bpf.store_i64(I64(chunk), buffer, offset)
        return buffer

    def visit_Builtin(self, node: ast.Builtin) -> ir.Value:
        name = node.name
        if name in ("pid", "tid"):
            pid_tgid = self.bpf.call_helper(GET_CURRENT_PID_TGID, [], name="pid_tgid")
            if name == "pid":
                return self.ir.lshr(pid_tgid, I64(32), name="pid")
            return self.ir.and_(pid_tgid, I64(0xFFFFFFFF), name="tid")
        if name in ("uid", "gid"):
            uid_gid = self.bpf.call_helper(GET_CURRENT_UID_GID, [], name="uid_gid")
            if name == "gid":
                return self.ir.lshr(uid_gid, I64(32), name="gid")
            return self.ir.and_(uid_gid, I64(0xFFFFFFFF), name="uid")
        if name == "nsecs":
            return self.bpf.call_helper(KTIME_GET_NS, [], name="nsecs")
        if name == "comm":
            buffer = self.bpf.buffer(COMM_SIZE, name="comm")
            self.bpf.call_helper(GET_CURRENT_COMM, [buffer, I64(COMM_SIZE)], name="comm_status")
            return buffer
        if name == "retval":
            return self.bpf.load_i64(self.bpf.context, self.arch.return_offset, name="retval")
        if name.startswith("arg"):
            return self.bpf.load_i64(self.bpf.context, self.arch.arg_offsets[int(name[3:])], name=name)
        raise AssertionError(f"no code for builtin {name}")

    def visit_Map(self, node: ast.Map) -> ir.Value:
        spec = self.plan.maps[node.name]
        key = self._key(spec, node)
        element = self.bpf.map_lookup(self.maps[spec.name], key)
        if spec.value.kind == STRING:
            result = self.bpf.buffer(stored_size(spec.value), name="map_string")
            with self.bpf.if_not_null(element):
                self.bpf.copy(result, element, stored_size(spec.value))
            return result
        result = self.bpf.buffer(8, name="map_value")
        with self.bpf.if_not_null(element):
            self.bpf.store_i64(self.bpf.load_i64(element), result, 0)
        return self.bpf.load_i64(result, name="map_read")

    def visit_Call(self, node: ast.Call) -> ir.Value | None:
        if node.name == "printf":
            format_node, *args = node.args
            self._send_event(self.plan.event_ids[node], args)
        elif node.name == "exit":
            self._send_event(self.plan.event_ids[node], node.args, default=I64(0))
            self.bpf.return_now()
        elif node.name == "delete":
            (target,) = node.args
            spec = self.plan.maps[target.name]
            self.bpf.map_delete(self.maps[spec.name], self._key(spec, target))
        else:
            raise AssertionError(f"no code for call {node.name}")
        return None

    def visit_Unop(self, node: ast.Unop) -> ir.Value:
        operand = self.visit(node.operand)
        if node.op == "-":
            return self.ir.neg(operand, name="negated")
        if node.op == "~":
            return self.ir.not_(operand, name="inverted")
        return self._bool(self.ir.icmp_unsigned("==", operand, I64(0)))

    def visit_Binop(self, node: ast.Binop) -> ir.Value:
        left, right = self.visit(node.left), self.visit(node.right)
        if self.types[node.left].kind == STRING:
            return self._strings_compare(node.op, left, right, self.types[node.left], self.types[node.right])
        signed = _signed_operation(node, self.types)
        op = node.op
        if op in ("&&", "||"):
            # Both sides are free of side effects, so evaluating both is the same as short-circuiting.
            left_true = self.ir.icmp_unsigned("!=", left, I64(0))
            right_true = self.ir.icmp_unsigned("!=", right, I64(0))
            combine = self.ir.and_ if op == "&&" else self.ir.or_
            return self._bool(combine(left_true, right_true))
        if op in ("==", "!=", "<", "<=", ">", ">="):
            compare = self.ir.icmp_signed if signed else self.ir.icmp_unsigned
            return self._bool(compare(op, left, right))
        if op in ("/", "%"):
            return self._divide(op, left, right, signed)
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
        return simple[op](left, right, name="result")

    # Pieces

    def _strings_compare(self, op: str, left: ir.Value, right: ir.Value, left_type: Type, right_type: Type) -> ir.Value:
        """== and != on strings: both buffers are NUL-padded, so compare them 8 bytes at a time, the
        shorter one reading as zeros past its end."""
        left_size, right_size = stored_size(left_type), stored_size(right_type)
        equal = ir.Constant(ir.IntType(1), 1)
        for offset in range(0, max(left_size, right_size), 8):
            left_chunk = self.bpf.load_i64(left, offset, name="chunk") if offset < left_size else I64(0)
            right_chunk = self.bpf.load_i64(right, offset, name="chunk") if offset < right_size else I64(0)
            equal = self.ir.and_(equal, self.ir.icmp_unsigned("==", left_chunk, right_chunk))
        return self._bool(equal if op == "==" else self.ir.not_(equal))

    def _bool(self, bit: ir.Value) -> ir.Value:
        return self.ir.zext(bit, I64, name="bool")

    def _divide(self, op: str, left: ir.Value, right: ir.Value, signed: bool) -> ir.Value:
        """Division and remainder; signed ones through unsigned, because LLVM's BPF backend aborts on
        sdiv/srem unless the CPU is v4 (kernel 6.6), which would exclude older production kernels."""
        unsigned = self.ir.udiv if op == "/" else self.ir.urem
        if not signed:
            return unsigned(left, right, name="quotient")
        left_negative = self.ir.icmp_signed("<", left, I64(0))
        right_negative = self.ir.icmp_signed("<", right, I64(0))
        magnitude = unsigned(self._absolute(left, left_negative), self._absolute(right, right_negative))
        negative = self.ir.xor(left_negative, right_negative) if op == "/" else left_negative
        return self.ir.select(negative, self.ir.neg(magnitude), magnitude, name="quotient")

    def _absolute(self, value: ir.Value, negative: ir.Value) -> ir.Value:
        return self.ir.select(negative, self.ir.neg(value), value)

    def _log2_bucket(self, value: ir.Value, value_type: Type) -> ir.Value:
        """bpftrace's hist() bucket: 0 for negative values, 1 for 0, else 2 + floor(log2(value)).

        floor(log2) by binary search with selects: no loops, so the verifier sees straight-line code.
        """
        remaining, log2 = value, I64(0)
        for shift in (32, 16, 8, 4, 2, 1):
            big = self.ir.icmp_unsigned(">=", remaining, I64(1 << shift))
            remaining = self.ir.select(big, self.ir.lshr(remaining, I64(shift)), remaining)
            log2 = self.ir.select(big, self.ir.add(log2, I64(shift)), log2)
        bucket = self.ir.select(self.ir.icmp_unsigned("==", value, I64(0)), I64(1), self.ir.add(log2, I64(2)))
        if value_type.signed:
            bucket = self.ir.select(self.ir.icmp_signed("<", value, I64(0)), I64(0), bucket)
        return bucket

    def _key(self, spec: MapSpec, node: ast.Map, bucket: ir.Value | None = None) -> ir.Value:
        fields = kernel_key_fields(spec)
        offsets, size = record_offsets(fields)
        key = self.bpf.buffer(size, name="key")
        values = [(self.visit(key_node), self.types[key_node]) for key_node in node.keys]
        if bucket is not None:
            values.append((bucket, UINT64))
        for (value, value_type), field, offset in zip(values, fields, offsets):
            self._store_field(key, offset, field, value, value_type)
        return key

    def _store_field(self, record: ir.Value, offset: int, field: Type, value: ir.Value, value_type: Type) -> None:
        if field.kind == STRING:
            self.bpf.copy(self.bpf.at(record, offset), value, min(stored_size(field), stored_size(value_type)))
        else:
            self.bpf.store_i64(value, record, offset)

    def _stored_value(self, map_value: Type, value: ir.Value, value_type: Type) -> ir.Value:
        slot = self.bpf.buffer(stored_size(map_value), name="stored")
        self._store_field(slot, 0, map_value, value, value_type)
        return slot

    def _increment(self, spec: MapSpec, key: ir.Value) -> None:
        """count() and hist(): add 1 to this CPU's value, creating the element at 1 the first time.

        Per-CPU maps, so no atomics are needed; a racing first update from another CPU is harmless
        because updating a per-CPU element from BPF only writes the current CPU's slot."""
        map_variable = self.maps[spec.name]
        element = self.bpf.map_lookup(map_variable, key)
        found = self.ir.icmp_unsigned("!=", element, ir.Constant(PTR, None), name="found")
        with self.ir.if_else(found) as (then, otherwise):
            with then:
                self.bpf.store_i64(self.ir.add(self.bpf.load_i64(element), I64(1)), element, 0)
            with otherwise:
                self.bpf.map_update(map_variable, key, self._stored_value(spec.value, I64(1), UINT64))

    def _send_event(self, event_id: int, args: list[ast.Node], default: ir.Value | None = None) -> None:
        """Write `event_id` then the arguments, laid out as common.types.record_offsets says."""
        spec = self.plan.resources.events[event_id]
        offsets, size = record_offsets(spec.args)
        record = self.bpf.buffer(8 + size, name="event")
        self.bpf.store_i64(I64(event_id), record, 0)
        values = [(self.visit(arg), self.types[arg]) for arg in args]
        if not values and default is not None:
            values = [(default, spec.args[0])]
        for (value, value_type), field, offset in zip(values, spec.args, offsets):
            self._store_field(record, 8 + offset, field, value, value_type)
        self.bpf.ringbuf_output(self.ring_buffer, record, 8 + size)


def _signed_operation(node: ast.Binop, types: dict) -> bool:
    """Signed when a signed operand that is not a literal >= 0 takes part (bpftrace's promotion)."""

    def signed(operand: ast.Node) -> bool:
        constant = constant_value(operand)
        return types[operand].signed and types[operand].kind in (INT, BOOL) and (constant is None or constant < 0)

    return signed(node.left) or signed(node.right)
