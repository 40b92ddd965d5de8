"""Read the script's maps from the kernel into the value model, in bpftrace's print order.

Consumes a `MapSpec` (common/schema.py says how its keys and elements are laid out and how per-CPU
elements reduce) and the map's fd; produces a `values.MapValue`. Also clears and zeroes maps for
clear() and zero(), which run here, in user space, as in bpftrace.

Print order (bpftrace 0.27's, src/types_format.cpp): plain integer, count and sum maps ascending by
value (bpftrace leaves maps of 32-bit ints in hash order; we sort them too); min and max by value
read as unsigned; avg and stats by average; hist and lhist by their total count; other maps by key.
Ties (bpftrace: hash order) by key. Keys compare field by field: integers as signed 64-bit values,
strings by bytes.

Every value the kernel hands back is checked against the layout before use: a record that does not
fit is a `UserError`.
"""

from __future__ import annotations

import ctypes
import errno
import operator
import os
import struct

from bpfrun.errors import UserError
from bpfrun.libbpf import lib
from bpfrun.values import Array, Histogram, HistogramRow, MapValue, Primitive, Record, Tuple, decode
from common import layout, schema
from common.schema import MapSpec

U64_MASK = (1 << 64) - 1
_SUFFIXES = "\0KMGTPE"

Entries = list[tuple[bytes, bytes]]  # (kernel key, kernel value) byte strings


def possible_cpus() -> int:
    count = lib.libbpf_num_possible_cpus()
    if count <= 0:
        raise UserError(f"cannot count the possible CPUs: {os.strerror(-count)}")
    return count


def read_map(spec: MapSpec, map_fd: int, ncpus: int, top: int = 0, div: int = 0, zeroed: bool = False) -> MapValue:
    """The map's current contents; `top` keeps only the last (largest) entries, `div` divides
    the values (print(@m, top, div)). `zeroed`: zero() was called on this map without keys while
    it had a value, so it prints as 0 until written again (a hash map keeps its zeroed keys by
    itself; a per-CPU array cannot tell a zero from nothing)."""
    entries = read_entries(spec, map_fd, ncpus)
    return build(spec, entries, ncpus, top, div, zeroed)


BATCH_ENTRIES = 4096  # entries read per bpf_map_lookup_batch call


def read_entries(spec: MapSpec, map_fd: int, ncpus: int) -> Entries:
    """All (key, value) byte strings of one kernel map; a per-CPU value holds every CPU's element.
    Read in batches (a few system calls for a large map); one element at a time where the kernel
    cannot batch (a hash bucket larger than the batch, a kernel without batch lookups)."""
    entries = _read_batched(spec, map_fd, ncpus)
    return entries if entries is not None else _read_one_by_one(spec, map_fd, ncpus)


def _read_batched(spec: MapSpec, map_fd: int, ncpus: int) -> Entries | None:
    key_size, value_size = schema.key_size(spec), _value_bytes(spec, ncpus)
    keys = ctypes.create_string_buffer(key_size * BATCH_ENTRIES)
    values = ctypes.create_string_buffer(value_size * BATCH_ENTRIES)
    position = ctypes.create_string_buffer(max(key_size, 8))  # opaque to us: where the next batch starts
    next_position = ctypes.create_string_buffer(max(key_size, 8))
    count = ctypes.c_uint32()
    entries: Entries = []
    start = None  # NULL: from the beginning
    while True:
        count.value = BATCH_ENTRIES
        error = lib.bpf_map_lookup_batch(map_fd, start, next_position, keys, values, ctypes.byref(count), None)
        if error < 0 and error != -errno.ENOENT:
            return None
        if count.value > BATCH_ENTRIES:
            raise UserError(
                f"map {spec.name}: the kernel returned {count.value} entries for a batch of {BATCH_ENTRIES}"
            )
        raw_keys, raw_values = keys.raw, values.raw
        entries.extend(
            (raw_keys[i * key_size : (i + 1) * key_size], raw_values[i * value_size : (i + 1) * value_size])
            for i in range(count.value)
        )
        if len(entries) > spec.max_entries:
            raise UserError(f"map {spec.name} returned more than its {spec.max_entries} entries")
        if error == -errno.ENOENT:  # that was the last batch
            return entries
        ctypes.memmove(position, next_position, len(position))
        start = position


def _read_one_by_one(spec: MapSpec, map_fd: int, ncpus: int) -> Entries:
    key_size = schema.key_size(spec)
    key = ctypes.create_string_buffer(key_size)
    next_key = ctypes.create_string_buffer(key_size)
    value = ctypes.create_string_buffer(_value_bytes(spec, ncpus))
    entries: dict[bytes, bytes] = {}
    previous = None  # NULL asks for the first key
    while True:
        error = lib.bpf_map_get_next_key(map_fd, previous, next_key)
        if error == -errno.ENOENT:
            break
        if error < 0:
            raise UserError(f"cannot read map {spec.name}: {os.strerror(-error)}")
        error = lib.bpf_map_lookup_elem(map_fd, next_key, value)
        if error == 0:
            entries[next_key.raw] = value.raw
        elif error != -errno.ENOENT:  # ENOENT: deleted since get_next_key; nothing to print
            raise UserError(f"cannot read map {spec.name}: {os.strerror(-error)}")
        ctypes.memmove(key, next_key, key_size)
        previous = key
        if len(entries) > spec.max_entries:
            raise UserError(f"map {spec.name} returned more than its {spec.max_entries} entries")
    return list(entries.items())


def clear_map(spec: MapSpec, map_fd: int, ncpus: int) -> None:
    """clear(@m): delete every element (a per-CPU array's elements cannot be deleted: zeroed)."""
    if spec.kernel_type == schema.PERCPU_ARRAY:
        zero_map(spec, map_fd, ncpus)
        return
    for key, _ in read_entries(spec, map_fd, ncpus):
        lib.bpf_map_delete_elem(map_fd, key)


def zero_map(spec: MapSpec, map_fd: int, ncpus: int) -> bool:
    """zero(@m): set every element of every CPU to zero, keeping the keys. Returns whether the map
    had a value to zero (a map without keys)."""
    had_value = bool(build(spec, read_entries(spec, map_fd, ncpus), ncpus).entries)
    zeros = bytes(_value_bytes(spec, ncpus))
    for key, _ in read_entries(spec, map_fd, ncpus):
        lib.bpf_map_update_elem(map_fd, key, zeros, 0)
    return had_value


def _value_bytes(spec: MapSpec, ncpus: int) -> int:
    """Bytes one lookup returns: the element, once per possible CPU for per-CPU maps."""
    return schema.element_size(spec) * (ncpus if schema.is_per_cpu(spec) else 1)


# The value model


def build(spec: MapSpec, entries: Entries, ncpus: int, top: int = 0, div: int = 0, zeroed: bool = False) -> MapValue:
    fast = _integer_rows(spec, entries, ncpus)
    if fast is not None:
        values = fast
        values.sort(key=_integer_order(spec))
        if div in (0, 1):  # integers as they are: no per-entry finishing
            return MapValue(spec.name, True, tuple(values[-top:] if 0 < top < len(values) else values), False)
    else:
        if schema.is_histogram(spec):
            values = _histograms(spec, entries, ncpus)
        else:
            values = [(_key(spec, key), _reduce(spec, value, ncpus)) for key, value in entries]
            values = [(key, value) for key, value in values if value is not _UNSET]
        if zeroed and not values:
            values = [(None, _ZERO[spec.aggregate])]
        values.sort(key=lambda item: (_value_order(spec, item[1]), _key_order(item[0], spec.key)))
    if top and len(values) > top:
        values = values[len(values) - top :]
    stats = spec.aggregate in ("avg", "stats")
    entries_out = tuple((key if spec.key is not None else None, _finish(spec, value, div)) for key, value in values)
    return MapValue(spec.name, spec.key is not None, entries_out, stats)


def _integer_rows(spec: MapSpec, entries: Entries, ncpus: int) -> list[tuple[int, int]] | None:
    """The common large map, integer keys and count(), sum() or plain integer values in a hash map,
    decoded with one struct call per element; None for every other map (the general path)."""
    key = spec.key
    if key is None or key.kind not in (layout.INT, layout.UINT) or spec.kernel_type == schema.PERCPU_ARRAY:
        return None
    key_size, key_signed = key.size, key.kind == layout.INT
    copies = ncpus if schema.is_per_cpu(spec) else 1
    if spec.aggregate == "count":
        words = struct.Struct(f"<{copies}Q")
        value_of = lambda data: sum(words.unpack_from(data)) & U64_MASK  # noqa: E731
    elif spec.aggregate == "sum":
        signed = spec.value.kind == layout.INT
        words = struct.Struct("<" + ("qQ" if signed else "QQ") * copies)
        value_of = lambda data: _wrap(sum(words.unpack_from(data)[::2]), signed)  # noqa: E731
    elif spec.aggregate == schema.PLAIN and spec.value.kind in (layout.INT, layout.UINT):
        size, signed = spec.value.size, spec.value.kind == layout.INT
        value_of = lambda data: int.from_bytes(data[:size], "little", signed=signed)  # noqa: E731
    else:
        return None
    expected = schema.element_size(spec) * copies
    if any(len(value) < expected or len(k) < key_size for k, value in entries):
        return None  # the general path reports the malformed element
    return [(int.from_bytes(k[:key_size], "little", signed=key_signed), value_of(value)) for k, value in entries]


def _integer_order(spec: MapSpec):
    """_value_order and _key_order for _integer_rows: by value, then by key read as signed."""
    if spec.key.kind == layout.INT:
        return operator.itemgetter(1, 0)
    bits = 8 * spec.key.size
    top, wrap = 1 << (bits - 1), 1 << bits
    return lambda item: (item[1], item[0] - wrap if item[0] >= top else item[0])


_UNSET = object()  # a per-CPU element no CPU has written (a min() never called...)
# What a zeroed element of each aggregate reduces to (a plain map is never a per-CPU array).
_ZERO = {"count": 0, "sum": 0, "min": 0, "max": 0, "avg": (0, 0), "stats": (0, 0), "hist": {}, "lhist": {}}


def _key(spec: MapSpec, kernel_key: bytes) -> Primitive:
    if spec.key is None:
        return None
    return _decoded(spec.key, kernel_key, spec.name)


def _decoded(spec_layout: layout.Layout, data: bytes, name: str) -> Primitive:
    try:
        return decode(spec_layout, data)
    except ValueError as error:
        raise UserError(f"map {name} holds a malformed element: {error}") from None


def _per_cpu(spec: MapSpec, value: bytes, ncpus: int) -> list[bytes]:
    size = schema.element_size(spec)
    copies = ncpus if schema.is_per_cpu(spec) else 1
    if len(value) < size * copies:
        raise UserError(f"map {spec.name} returned {len(value)} bytes for an element of {size * copies}")
    return [value[cpu * size : (cpu + 1) * size] for cpu in range(copies)]


def _word(data: bytes, offset: int, signed: bool = False) -> int:
    return int.from_bytes(data[offset : offset + 8], "little", signed=signed)


def _reduce(spec: MapSpec, value: bytes, ncpus: int):
    """One element's value: a plain value decoded; per-CPU aggregates reduced (schema.py's table).

    The element of a map without keys (a per-CPU array) always exists: it is _UNSET until some
    CPU wrote it (a count above 0, a set flag, a count of values), and then is not printed."""
    copies = _per_cpu(spec, value, ncpus)
    signed = spec.value.kind == layout.INT
    kind = spec.aggregate
    always_there = spec.kernel_type == schema.PERCPU_ARRAY
    if kind == schema.PLAIN:
        return _decoded(spec.value, copies[0], spec.name)
    if kind == "count":
        count = sum(_word(copy, 0) for copy in copies) & U64_MASK
        return _UNSET if always_there and count == 0 else count
    if kind in ("min", "max"):
        values = [_word(copy, 0, signed) for copy in copies if _word(copy, 8)]
        if not values:
            return _UNSET if always_there else 0
        return min(values) if kind == "min" else max(values)
    total = _wrap(sum(_word(copy, 0, signed) for copy in copies), signed)
    count = sum(_word(copy, 8) for copy in copies) & U64_MASK
    if count == 0 and always_there:
        return _UNSET
    if kind == "sum":
        return total
    return (count, total)  # avg and stats: finished by _finish


def _wrap(value: int, signed: bool) -> int:
    value &= U64_MASK
    return value - (1 << 64) if signed and value >> 63 else value


def _truncating_division(total: int, count: int) -> int:
    """C's integer division, which truncates toward zero (0 when dividing by 0)."""
    if count == 0:
        return 0
    quotient = abs(total) // abs(count)
    return -quotient if (total < 0) != (count < 0) else quotient


def _value_order(spec: MapSpec, value) -> int:
    kind = spec.aggregate
    if kind in ("hist", "lhist"):
        return sum(value.values())
    if kind in ("avg", "stats"):
        count, total = value
        return _truncating_division(total, count)
    if kind in ("min", "max"):
        return value & U64_MASK  # bpftrace compares them as unsigned
    if kind in ("count", "sum") or (kind == schema.PLAIN and spec.value.kind in (layout.INT, layout.UINT)):
        return value
    return 0  # other values print by key


def _key_order(key: Primitive, spec: layout.Layout | None) -> tuple:
    """Keys compare as bpftrace compares them: integers as signed integers of their own width
    (a uint8 key of 255 comes before 1), strings by bytes, tuples field by field."""
    if key is None or spec is None:
        return ()
    if isinstance(key, bool):
        return (0, int(key))
    if isinstance(key, int):
        bits = 8 * spec.size
        low = key & ((1 << bits) - 1)
        return (0, low - (1 << bits) if low >> (bits - 1) else low)
    if isinstance(key, str):
        return (1, key.encode("utf-8", "surrogateescape"))
    if isinstance(key, Tuple):
        return (2, tuple(_key_order(item, field.layout) for item, field in zip(key.items, spec.fields)))
    if isinstance(key, Array):
        element = spec.fields[0].layout
        return (2, tuple(_key_order(item, element) for item in key.items))
    if isinstance(key, Record):
        return (3, tuple(_key_order(item, field.layout) for (_, item), field in zip(key.fields, spec.fields)))
    return (4,)


def _finish(spec: MapSpec, value, div: int):
    """The printed value: divided by `div` (print's third argument); avg and stats from their
    (count, total) pair; histograms as rows."""
    divisor = div or 1
    kind = spec.aggregate
    if kind == "hist":
        return _log2_histogram(value, spec.params[0], divisor)
    if kind == "lhist":
        return _linear_histogram(value, *spec.params)
    if kind in ("avg", "stats"):
        count, total = value
        average = _truncating_division(_truncating_division(total, count), divisor)
        if kind == "avg":
            return average
        return Record((("count", count), ("average", average), ("total", total)))
    if type(value) is int:  # not a bool, not a pointer's address
        return _truncating_division(value, divisor)
    return value


# Histograms


def _histograms(spec: MapSpec, entries: Entries, ncpus: int) -> list[tuple[Primitive, dict[int, int]]]:
    """Counts by bucket for each script key. The bucket is the last member of the kernel key (for a
    per-CPU array, the key itself)."""
    buckets = schema.histogram_buckets(spec)
    kernel_key = schema.kernel_key(spec)
    by_key: dict[bytes, tuple[Primitive, dict[int, int]]] = {}
    for key, value in entries:
        if spec.kernel_type == schema.PERCPU_ARRAY:
            script_key, bucket_bytes = b"", key[:4]
        else:
            bucket_field = kernel_key.fields[-1]
            script_key, bucket_bytes = key[: bucket_field.offset], key[bucket_field.offset : bucket_field.offset + 8]
        bucket = int.from_bytes(bucket_bytes, "little")
        if bucket >= buckets:
            raise UserError(f"map {spec.name} holds bucket {bucket} of a histogram of {buckets}")
        count = sum(_word(copy, 0) for copy in _per_cpu(spec, value, ncpus)) & U64_MASK
        if count == 0:
            continue
        entry = by_key.setdefault(script_key, (_key(spec, key) if spec.key is not None else None, {}))
        entry[1][bucket] = count
    return list(by_key.values())


def _log2_histogram(counts: dict[int, int], bits: int, divisor: int) -> Histogram:
    """hist(n, k)'s rows. Bucket 0 holds negative values; bucket b <= 2^(k+1) the value b - 1;
    above, bucket b ends before `_log2_bound(b)`. Labels as bpftrace's: plain numbers up to
    2^(k+1), then powers of 1024 as K, M, G..."""
    if not counts:
        return Histogram(())
    rows = []
    for bucket in range(min(counts), max(counts) + 1):
        count = counts.get(bucket, 0) // divisor
        if bucket == 0:
            rows.append(HistogramRow("(..., 0)", None, -1, count))
            continue
        low_text, low = _log2_bound(bucket - 1, bits)
        high_text, high = _log2_bound(bucket, bits)
        plain = bucket <= 2 << bits  # bpftrace prints "[v]" only between two plain numbers
        label = f"[{low_text}]" if plain and high == low + 1 else f"[{low_text}, {high_text})"
        rows.append(HistogramRow(label, low, high - 1, count))
    return Histogram(tuple(rows))


def _log2_bound(bucket: int, bits: int) -> tuple[str, int]:
    """The exclusive upper bound of a hist(n, k) bucket, as text and as a number."""
    if bucket <= 2 << bits:
        return str(bucket), bucket
    size = 1 << bits
    power = (bucket >> bits) - 1
    value = (1 << power) * (size + (bucket & (size - 1)))
    decade = power // 10
    text = f"{(1 << (power - 10 * decade)) * (size + (bucket & (size - 1)))}{_SUFFIXES[decade].strip(chr(0))}"
    return text, value


def _linear_histogram(counts: dict[int, int], low: int, high: int, step: int) -> Histogram:
    """lhist(n, min, max, step)'s rows: bucket 0 below min, bucket b in [min + (b-1)*step,
    min + b*step), the last one at or above max."""
    if not counts:
        return Histogram(())
    last = (high - low) // step + 1
    rows = []
    for bucket in range(min(counts), max(counts) + 1):
        count = counts.get(bucket, 0)
        upper = low + bucket * step
        if bucket == 0:
            rows.append(HistogramRow(f"(..., {_linear_label(low, step)})", None, low - 1, count))
        elif bucket == last or upper > high:
            lower = low + (bucket - 1) * step
            rows.append(HistogramRow(f"[{_linear_label(lower, step)}, ...)", lower, None, count))
        else:
            lower = upper - step
            label = f"[{_linear_label(lower, step)}]" if step == 1 and step % 1024 else None
            label = label or f"[{_linear_label(lower, step)}, {_linear_label(upper, step)})"
            rows.append(HistogramRow(label, lower, upper - 1, count))
    return Histogram(tuple(rows))


def _linear_label(number: int, step: int) -> str:
    """bpftrace writes lhist bounds with K or M only when the step is a multiple of 1024."""
    if step % 1024 or number == 0:
        return str(number)
    if number % (1024 * 1024) == 0:
        return f"{number // (1024 * 1024)}M"
    if number % 1024 == 0:
        return f"{number // 1024}K"
    return str(number)
