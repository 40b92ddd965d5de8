"""Where one program keeps the values that do not fit in a register: strings, tuples, map keys.

Memory is handed out at compile time in statement order and given back when what it holds is
dead, so that many statements share the same bytes:

- `mark()` / `release(mark)` bracket a statement: its temporaries die at its end; a block's
  variables are acquired before its first statement and released after its last.
- Stack first: each slot is an 8-aligned alloca; a released slot is reused by a later request of
  at most its size. Slots never exceed STACK_BUDGET bytes in all, which leaves the rest of BPF's
  512 bytes to LLVM for spilled registers (when LLVM runs out, it aborts the whole compiler with
  "stack limit exceeded", which must never reach the user).
- Then the per-CPU scratch map: one element per CPU, looked up once at the program's entry, and
  carved with the same discipline. Its size is the largest need of any program, at most
  SCRATCH_LIMIT; a program that needs more is refused with a diagnostic at the statement.

A BPF program runs to the end on its CPU without migrating, so per-CPU scratch is private to it,
except from a program that interrupts it on the same CPU (NMI-driven perf events), as in bpftrace.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from bpftc.codegen.builder import I8, I32, I64, MAP_LOOKUP_ELEM, PTR, BpfBuilder
from common.record import record

STACK_BUDGET = 256
# A for-map body runs as a callback whose stack adds to the probe's, within the same 512 bytes.
CALLBACK_STACK_BUDGET = 64
SCRATCH_LIMIT = 32 * 1024


class OutOfMemory(Exception):
    """A statement needs more than SCRATCH_LIMIT bytes of live values."""


@record(frozen=True, slots=True)
class Mark:
    slots_in_use: int
    scratch_offset: int


class Memory:
    def __init__(
        self,
        bpf: BpfBuilder,
        scratch_map: Callable[[], ir.GlobalVariable],
        stack_budget: int = STACK_BUDGET,
        scratch_start: int = 0,
    ) -> None:
        self.bpf = bpf
        self.scratch_map = scratch_map  # defines the module's scratch map the first time it is called
        self.stack_budget = stack_budget
        self.stack_bytes = 0  # bytes of all stack slots made so far
        self.scratch_bytes = scratch_start  # the scratch element size this program needs (high-water mark)
        self._free: list[tuple[int, ir.Value]] = []  # (size, slot), released stack slots
        self._in_use: list[tuple[int, ir.Value]] = []  # stack slots in acquisition order
        # A callback's scratch starts past what the probe calling it holds.
        self._scratch_offset = scratch_start
        self._scratch_base: ir.Value | None = None

    @property
    def scratch_offset(self) -> int:
        return self._scratch_offset

    def acquire(self, size: int) -> ir.Value:
        """A pointer to `size` bytes (a multiple of 8), 8-aligned, uninitialised."""
        assert size > 0 and size % 8 == 0, size
        reusable = [(slot_size, slot) for slot_size, slot in self._free if slot_size >= size]
        if reusable:
            chosen = min(reusable, key=lambda item: item[0])
            self._free.remove(chosen)
            self._in_use.append(chosen)
            return chosen[1]
        if self.stack_bytes + size <= self.stack_budget:
            slot = self.bpf.allocas.alloca(ir.ArrayType(I64, size // 8), name="slot")
            slot.align = 8
            # llvmlite still gives an alloca a typed pointer type and checks loads and stores
            # against it; every access here is an i64 at a byte offset, so use it as an opaque ptr.
            slot.type = PTR
            self.stack_bytes += size
            self._in_use.append((size, slot))
            return slot
        return self._acquire_scratch(size)

    def mark(self) -> Mark:
        return Mark(len(self._in_use), self._scratch_offset)

    def release(self, mark: Mark) -> None:
        self._free.extend(self._in_use[mark.slots_in_use :])
        del self._in_use[mark.slots_in_use :]
        self._scratch_offset = mark.scratch_offset

    def entry_guard(self) -> ir.Value | None:
        """For BpfBuilder.finish: true when the scratch element was found (always, for a per-CPU
        array of one element, but the verifier wants the check); None when unused."""
        if self._scratch_base is None:
            return None
        return self.bpf.allocas.icmp_unsigned("!=", self._scratch_base, ir.Constant(PTR, None))

    def _acquire_scratch(self, size: int) -> ir.Value:
        if self._scratch_offset + size > SCRATCH_LIMIT:
            raise OutOfMemory
        if self._scratch_base is None:
            key = self.bpf.allocas.alloca(I32, name="scratch_key")
            self.bpf.allocas.store(I32(0), key)
            lookup = ir.Constant(I64, MAP_LOOKUP_ELEM).inttoptr(PTR)
            lookup.function_type = ir.FunctionType(PTR, [PTR, PTR])
            self._scratch_base = self.bpf.allocas.call(lookup, [self.scratch_map(), key], name="scratch")
        pointer = self.bpf.allocas.gep(self._scratch_base, [I64(self._scratch_offset)], source_etype=I8)
        self._scratch_offset += size
        self.scratch_bytes = max(self.scratch_bytes, self._scratch_offset)
        return pointer
