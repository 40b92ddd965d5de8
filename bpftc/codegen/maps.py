"""Map accesses in generated code: building kernel keys, reading and writing elements, and updating
aggregations (count, sum, min, max, avg, stats, hist, lhist) in their per-CPU elements.

The layouts are common/schema.py's (`kernel_key`, `element`), the same ones bpfrun reads back.
Keys and values are built in memory from codegen/memory.py, zeroed where the value does not
cover them: a key's padding takes part in the hash lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir

from common import schema
from common.schema import MapSpec

from bpftc import ast, storage
from bpftc.codegen.builder import BPF_ANY, I64, MAP_LOOKUP_PERCPU_ELEM, NULL, PTR

MAX_CPUS = 8192  # a bound the verifier can see even before it knows ncpus (CONFIG_NR_CPUS' maximum)

if TYPE_CHECKING:
    from bpftc.codegen.generate import _ProbeGenerator


class MapAccess:
    def __init__(self, generator: _ProbeGenerator) -> None:
        self.generator = generator
        self.bpf = generator.bpf
        self.ir = generator.ir

    def _spec(self, node: ast.Map) -> MapSpec:
        return self.generator.plan.maps[node.name]

    def _variable(self, node: ast.Map) -> ir.GlobalVariable:
        return self.generator.shared.maps[node.name]

    # Keys

    def key(self, spec: MapSpec, keys: list[ast.Node], bucket: ir.Value | None = None) -> ir.Value:
        """The kernel key of an access: the script's keys, then the histogram bucket if any."""
        kernel = schema.kernel_key(spec)
        slot = self.generator.memory.acquire(8 if spec.kernel_type == schema.PERCPU_ARRAY else schema.key_size(spec))
        if spec.kernel_type == schema.PERCPU_ARRAY:
            self.bpf.store_i64(bucket if bucket is not None else I64(0), slot)  # a u32 index
            return slot
        if not kernel.fields:
            self.bpf.store_i64(I64(0), slot)  # a map without keys: its one key is 0
            return slot
        if spec.key is not None:
            if len(keys) == 1:
                self.generator.into(keys[0], slot)
            else:
                for key, field in zip(keys, spec.key.fields):
                    self.generator.into(key, self.bpf.at(slot, field.offset))
        if bucket is not None:
            self.bpf.store_i64(bucket, slot, kernel.fields[-1].offset)
        return slot

    # Plain values

    def assign(self, target: ast.Map, value: ast.Node) -> ir.Value | None:
        """The map update's return code (a negative errno when it failed); None for aggregations."""
        spec = self._spec(target)
        if spec.aggregate != schema.PLAIN:
            self._aggregate(spec, target, value)
            return None
        key = self.key(spec, target.keys)
        element = self.generator.memory.acquire(schema.element_size(spec))
        self.generator.into(value, element)
        return self.bpf.map_update(self._variable(target), key, element)

    def read(self, node: ast.Map) -> ir.Value:
        """The element's value; 0 (or zeroed memory) when the map has no such element."""
        spec = self._spec(node)
        if spec.aggregate != schema.PLAIN:
            return self._read_aggregate(spec, node)
        t = self.generator.types[node]
        if not storage.in_register(t):
            destination = self.generator.temporary(t)
            self.read_into(node, destination)
            return destination
        element = self.bpf.map_lookup(self._variable(node), self.key(self._spec(node), node.keys))
        return self._load_or_zero(element)

    def read_into(self, node: ast.Map, destination: ir.Value) -> None:
        t = self.generator.types[node]
        element = self.bpf.map_lookup(self._variable(node), self.key(self._spec(node), node.keys))
        with self.ir.if_else(self.bpf.is_null(element)) as (missing, found):
            with missing:
                self.bpf.zero(destination, storage.size_of(t))
            with found:
                self.bpf.copy(destination, element, storage.size_of(t))

    def _load_or_zero(self, element: ir.Value) -> ir.Value:
        start = self.ir.block
        with self.ir.if_then(self.ir.icmp_unsigned("!=", element, NULL, name="found")):
            loaded, found = self.bpf.load_i64(element, name="stored"), self.ir.block
        result = self.ir.phi(I64, name="read")
        result.add_incoming(I64(0), start)
        result.add_incoming(loaded, found)
        return result

    def increment(self, target: ast.Map, delta: ir.Value, prefix: bool) -> ir.Value:
        """`@x++` and friends: read (0 when missing), add, write back; the old or the new value."""
        spec = self._spec(target)
        key = self.key(spec, target.keys)
        old = self._load_or_zero(self.bpf.map_lookup(self._variable(target), key))
        new = self.ir.add(old, delta, name="incremented")
        element = self.generator.memory.acquire(8)
        self.bpf.store_i64(new, element)
        self.bpf.map_update(self._variable(target), key, element)
        return new if prefix else old

    def delete(self, target: ast.Map, key: ast.Node | None) -> ir.Value:
        kernel_key = self.key(self._spec(target), [key] if key is not None else [])
        result = self.bpf.map_delete(self._variable(target), kernel_key)
        return self.bpf.as_i64(self.ir.icmp_signed("==", result, I64(0), name="was_there"))

    def has_key(self, target: ast.Map, key: ast.Node) -> ir.Value:
        element = self.bpf.map_lookup(self._variable(target), self.key(self._spec(target), [key]))
        return self.bpf.as_i64(self.ir.icmp_unsigned("!=", element, NULL, name="present"))

    def find(self, target: ast.Map, key: ast.Node, variable: ast.Variable) -> ir.Value:
        """find(@m, key, $v): 1 and $v set to the element when the map has the key, else 0."""
        element = self.bpf.map_lookup(self._variable(target), self.key(self._spec(target), [key]))
        present = self.ir.icmp_unsigned("!=", element, NULL, name="present")
        slot, t = self.generator.variable_slot(variable)  # before the branch: later reads use it
        with self.ir.if_then(present):
            if storage.in_register(t):
                self.bpf.store_i64(self.bpf.load_i64(element), slot)
            else:
                self.bpf.copy(slot, element, storage.size_of(t))
        return self.bpf.as_i64(present)

    def _read_aggregate(self, spec: MapSpec, node: ast.Map) -> ir.Value:
        """count, sum, min, max, avg read in an expression: this element reduced over every
        CPU's copy, as bpfrun reduces it (common/schema.py), with bpf_map_lookup_percpu_elem.

        The loop runs to ncpus, a constant of the frozen .rodata, so the verifier sees it end."""
        key = self.key(spec, node.keys)
        accumulators = {name: self._variable_slot(name) for name in ("cpu", "first", "second", "seen")}
        header, body, step, done = (self.bpf.new_block(name) for name in ("cpus", "cpu", "next_cpu", "reduced"))
        self.ir.branch(header)
        self.ir.position_at_end(header)
        cpu = self.bpf.load_i64(accumulators["cpu"], name="cpu")
        in_range = self.ir.and_(
            self.ir.icmp_unsigned("<", cpu, self.generator.load_global(schema.NCPUS)),
            self.ir.icmp_unsigned("<", cpu, I64(MAX_CPUS)),
        )
        self.ir.cbranch(in_range, body, done)
        self.ir.position_at_end(body)
        element = self.bpf.call_helper(
            MAP_LOOKUP_PERCPU_ELEM, [self._variable(node), key, cpu], name="element", returns=PTR
        )
        with self.ir.if_then(self.ir.icmp_unsigned("!=", element, NULL, name="found")):
            self._accumulate(spec, element, accumulators)
        self.ir.branch(step)
        self.ir.position_at_end(step)
        self.bpf.store_i64(self.ir.add(cpu, I64(1)), accumulators["cpu"])
        self.ir.branch(header)
        self.ir.position_at_end(done)
        first = self.bpf.load_i64(accumulators["first"], name="first")
        if spec.aggregate != "avg":
            return first
        second = self.bpf.load_i64(accumulators["second"], name="second")
        return self.generator.divide(first, second, spec.value.kind == "int")

    def _variable_slot(self, name: str) -> ir.Value:
        slot = self.bpf.allocas.alloca(I64, name=name)
        self.bpf.allocas.store(I64(0), slot)  # LLVM promotes it to a register (mem2reg)
        return slot

    def _accumulate(self, spec: MapSpec, element: ir.Value, accumulators: dict[str, ir.Value]) -> None:
        first, second = accumulators["first"], accumulators["second"]
        if spec.aggregate in ("min", "max"):
            value = self.bpf.load_i64(element, 0)
            compare = self.ir.icmp_signed if spec.value.kind == "int" else self.ir.icmp_unsigned
            better = compare("<" if spec.aggregate == "min" else ">", value, self.bpf.load_i64(first))
            take = self.ir.or_(self.ir.icmp_unsigned("==", self.bpf.load_i64(accumulators["seen"]), I64(0)), better)
            is_set = self.ir.icmp_unsigned("!=", self.bpf.load_i64(element, 8), I64(0))
            with self.ir.if_then(self.ir.and_(is_set, take)):
                self.bpf.store_i64(value, first)
                self.bpf.store_i64(I64(1), accumulators["seen"])
            return
        self.bpf.store_i64(self.ir.add(self.bpf.load_i64(first), self.bpf.load_i64(element, 0)), first)
        if spec.aggregate == "avg":
            self.bpf.store_i64(self.ir.add(self.bpf.load_i64(second), self.bpf.load_i64(element, 8)), second)

    # Aggregations

    def _aggregate(self, spec: MapSpec, target: ast.Map, call: ast.Call) -> None:
        if spec.aggregate == "count":
            self._count(spec, target, self.key(spec, target.keys))
            return
        value = self.generator.value(call.args[0])
        if spec.aggregate == "hist":
            self._count(spec, target, self.key(spec, target.keys, self._log2_bucket(value, spec)))
        elif spec.aggregate == "lhist":
            self._count(spec, target, self.key(spec, target.keys, self._linear_bucket(value, spec)))
        else:
            self._pair(spec, target, self.key(spec, target.keys), value)

    def _count(self, spec: MapSpec, target: ast.Map, key: ir.Value) -> None:
        """Add 1 to this CPU's element, creating it at 1 the first time (a per-CPU array's
        elements always exist). Creating a per-CPU hash element from BPF sets this CPU's copy and
        zeroes the others, so a racing first update from another CPU loses nothing."""
        element = self.bpf.map_lookup(self._variable(target), key)
        if spec.kernel_type == schema.PERCPU_ARRAY:
            with self.ir.if_then(self.ir.icmp_unsigned("!=", element, NULL, name="found")):
                self.bpf.add_in_place(element, 0, I64(1))
            return
        with self.ir.if_else(self.bpf.is_null(element)) as (missing, found):
            with missing:
                self._create(target, key, [I64(1)])
            with found:
                self.bpf.add_in_place(element, 0, I64(1))

    def _pair(self, spec: MapSpec, target: ast.Map, key: ir.Value, value: ir.Value) -> None:
        """sum, avg, stats: (total += value, count += 1); min, max: (value, set) replaced when
        better or not yet set."""
        element = self.bpf.map_lookup(self._variable(target), key)
        with self.ir.if_else(self.bpf.is_null(element)) as (missing, found):
            with missing:
                if spec.kernel_type != schema.PERCPU_ARRAY:
                    self._create(target, key, [value, I64(1)])
            with found:
                if spec.aggregate in ("min", "max"):
                    self._min_max(spec, element, value)
                else:
                    self.bpf.add_in_place(element, 0, value)
                    self.bpf.add_in_place(element, 8, I64(1))

    def _min_max(self, spec: MapSpec, element: ir.Value, value: ir.Value) -> None:
        current = self.bpf.load_i64(element, 0, name="current")
        unset = self.ir.icmp_unsigned("==", self.bpf.load_i64(element, 8, name="set"), I64(0))
        compare = self.ir.icmp_signed if spec.value.kind == "int" else self.ir.icmp_unsigned
        better = compare("<" if spec.aggregate == "min" else ">", value, current)
        with self.ir.if_then(self.ir.or_(unset, better)):
            self.bpf.store_i64(value, element, 0)
            self.bpf.store_i64(I64(1), element, 8)

    def _create(self, target: ast.Map, key: ir.Value, words: list[ir.Value]) -> None:
        element = self.generator.memory.acquire(8 * len(words))
        for index, word in enumerate(words):
            self.bpf.store_i64(word, element, 8 * index)
        self.bpf.map_update(self._variable(target), key, element, BPF_ANY)

    def _log2_bucket(self, value: ir.Value, spec: MapSpec) -> ir.Value:
        """hist(n, k)'s bucket, as common/schema.py counts them: 0 for negative values; v + 1 for
        0 <= v < 2^(k+1); above, 2^k buckets per power of 2:
        ((p - k + 1) << k) + (v >> (p - k)) - 2^k + 1, where p = floor(log2(v)).

        floor(log2) by binary search with selects: no loops, so the verifier sees straight-line code.
        """
        (bits,) = spec.params
        remaining, log2 = value, I64(0)
        for shift in (32, 16, 8, 4, 2, 1):
            big = self.ir.icmp_unsigned(">=", remaining, I64(1 << shift))
            remaining = self.ir.select(big, self.ir.lshr(remaining, I64(shift)), remaining)
            log2 = self.ir.select(big, self.ir.add(log2, I64(shift)), log2)
        exponent = self.ir.sub(log2, I64(bits), name="exponent")
        large = self.ir.add(
            self.ir.shl(self.ir.add(exponent, I64(1)), I64(bits)),
            self.ir.add(self.ir.sub(self.ir.lshr(value, exponent), I64(1 << bits)), I64(1)),
            name="bucket",
        )
        small = self.ir.icmp_unsigned("<", value, I64(2 << bits))
        bucket = self.ir.select(small, self.ir.add(value, I64(1)), large)
        if spec.value.kind == "int":
            bucket = self.ir.select(self.ir.icmp_signed("<", value, I64(0)), I64(0), bucket)
        return bucket

    def _linear_bucket(self, value: ir.Value, spec: MapSpec) -> ir.Value:
        """lhist(n, min, max, step)'s bucket: 0 below min, the last one at or above max, else
        1 + (n - min) / step."""
        low, high, step = spec.params
        compare = self.ir.icmp_signed if spec.value.kind == "int" else self.ir.icmp_unsigned
        offset = self.ir.sub(value, I64(low))
        inside = self.ir.add(self.ir.udiv(offset, I64(step)), I64(1), name="bucket")
        bucket = self.ir.select(compare(">=", value, I64(high)), I64((high - low) // step + 1), inside)
        return self.ir.select(compare("<", value, I64(low)), I64(0), bucket)
