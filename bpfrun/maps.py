"""Step 7: read the script's maps from the kernel into one value model, in bpftrace's print order.

Consumes the `MapSpec`s of the bundle and the fd of each map; produces one `MapValues` per map,
ordered by map name, each with its entries in the order bpftrace 0.27 prints them:

- int and count values ascending by value (bpftrace 0.27 leaves maps of 32-bit ints in hash order;
  we sort them too), histograms ascending by their total count, other values by key;
- ties (bpftrace: hash order) by key; keys compare field by field, ints as bpftrace compares them
  (the signed value of their size), strings by bytes, false before true.

Per-CPU maps (`common.schema.is_per_cpu`) hold one value per possible CPU, each rounded up to 8
bytes: they are summed (modulo 2**64, as u64 counters wrap). A histogram's kernel key is the
script's key plus a u64 bucket index; its value model is the counts by bucket index. The model is
independent of rendering (output.py renders text; a JSON renderer can use the same model).

Errors: a map that cannot be read is a `UserError`.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bpfrun.decode import Scalar, decode_record, decode_value
from bpfrun.errors import UserError
from bpfrun.libbpf import lib
from common.schema import MapSpec, is_per_cpu, kernel_key_fields
from common.types import BOOL, COUNT, HIST, INT, SLOT, STRING, Type, record_offsets, stored_size

U64_MASK = (1 << 64) - 1

KeyPart = int | bool | str
Key = tuple[KeyPart, ...]


@dataclass(frozen=True, slots=True)
class Histogram:
    counts: tuple[int, ...]  # count of bucket index i at position i (0: negative values, 1: [0], ...)

    @property
    def total(self) -> int:
        return sum(self.counts)


Value = int | bool | str | Histogram


@dataclass(frozen=True, slots=True)
class MapValues:
    name: str  # as in the script: '@x', '@'
    keyed: bool  # False for a map without key: printed as '@x: value'
    entries: tuple[tuple[Key, Value], ...]  # in print order; () for an empty map


def read_maps(specs: Iterable[MapSpec], map_fds: Mapping[str, int]) -> tuple[MapValues, ...]:
    """Every map of the bundle, ordered by name as bpftrace prints them."""
    ncpus = possible_cpus()
    return tuple(
        build_map(spec, read_entries(map_fds[spec.elf_name], spec, ncpus), ncpus)
        for spec in sorted(specs, key=lambda spec: spec.name.encode())
    )


def possible_cpus() -> int:
    count = lib.libbpf_num_possible_cpus()
    if count <= 0:
        raise UserError(f"cannot count the possible CPUs: {os.strerror(-count)}")
    return count


def value_size(spec: MapSpec, ncpus: int) -> int:
    """Bytes that one lookup of this map returns."""
    if is_per_cpu(spec):
        return ncpus * stored_size(spec.value)  # each CPU's value is a stored value, 8-byte aligned
    return stored_size(spec.value)


def read_entries(map_fd: int, spec: MapSpec, ncpus: int) -> list[tuple[bytes, bytes]]:
    """All (key, value) byte strings of one kernel map."""
    _, key_size = record_offsets(kernel_key_fields(spec))
    key = ctypes.create_string_buffer(key_size)
    next_key = ctypes.create_string_buffer(key_size)
    value = ctypes.create_string_buffer(value_size(spec, ncpus))
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
    return list(entries.items())


def build_map(spec: MapSpec, entries: Iterable[tuple[bytes, bytes]], ncpus: int) -> MapValues:
    """The value model of one map from its raw kernel entries."""
    if spec.value.kind == HIST:
        values = _histograms(spec, entries, ncpus)
    else:
        values = [(_decode_key(spec, key), _decode_map_value(spec, value, ncpus)) for key, value in entries]
    ordered = sorted(values, key=lambda entry: _print_order(spec, entry))
    return MapValues(spec.name, bool(spec.key), tuple((_model_key(key), _model_value(value)) for key, value in ordered))


def _histograms(spec: MapSpec, entries: Iterable[tuple[bytes, bytes]], ncpus: int) -> list[tuple[tuple, Histogram]]:
    bucket_field = len(kernel_key_fields(spec)) - 1
    buckets: dict[tuple, dict[int, int]] = {}
    for key, value in entries:
        fields = decode_record(kernel_key_fields(spec), key)
        script_key, bucket = fields[:bucket_field], fields[bucket_field]
        buckets.setdefault(script_key, {})[bucket] = _sum_per_cpu(value, ncpus)
    return [(key, _histogram(counts)) for key, counts in buckets.items()]


def _histogram(counts_by_bucket: dict[int, int]) -> Histogram:
    size = max(counts_by_bucket) + 1
    return Histogram(tuple(counts_by_bucket.get(index, 0) for index in range(size)))


def _decode_key(spec: MapSpec, key: bytes) -> tuple[Scalar, ...]:
    if not spec.key:
        return ()  # the kernel key is a u64 that is always 0
    return decode_record(spec.key, key)


def _decode_map_value(spec: MapSpec, value: bytes, ncpus: int) -> int | bool | bytes:
    if spec.value.kind == COUNT:
        return _sum_per_cpu(value, ncpus)
    return decode_value(spec.value, value)


def _sum_per_cpu(value: bytes, ncpus: int) -> int:
    total = sum(int.from_bytes(value[cpu * SLOT : (cpu + 1) * SLOT], "little") for cpu in range(ncpus))
    return total & U64_MASK


def _print_order(spec: MapSpec, entry: tuple[tuple[Scalar, ...], object]) -> tuple:
    key, value = entry
    key_order = tuple(_key_part_order(t, part) for t, part in zip(spec.key, key))
    if spec.value.kind in (INT, COUNT):
        return (value, key_order)
    if spec.value.kind == HIST:
        assert isinstance(value, Histogram)
        return (value.total, key_order)
    return (key_order,)


def _key_part_order(t: Type, part: Scalar) -> int | bytes:
    """bpftrace compares int keys as the signed integer of their size, strings by bytes."""
    if t.kind == INT:
        assert isinstance(part, int)
        bits = 8 * t.size
        low = part & ((1 << bits) - 1)
        return low - (1 << bits) if low >> (bits - 1) else low
    if t.kind == BOOL:
        return int(part)
    assert t.kind == STRING and isinstance(part, bytes)
    return part


def _model_key(key: tuple[Scalar, ...]) -> Key:
    return tuple(_text(part) if isinstance(part, bytes) else part for part in key)


def _model_value(value: Scalar | Histogram) -> Value:
    return _text(value) if isinstance(value, bytes) else value


def _text(data: bytes) -> str:
    # surrogateescape keeps bytes that are not UTF-8: output.py writes them back unchanged.
    return data.decode("utf-8", "surrogateescape")
