"""Type descriptors shared by the compiler and the loader.

A `Type` says what a value is (its bpftrace name, e.g. 'uint32', 'string[16]', 'hist_t') and how it
is stored in BPF memory. The storage rules below are the contract between generated code and the
loader's decoders:

- every scalar (int*, uint*, bool) is stored as 8 bytes, little-endian, sign- or zero-extended
  according to `signed` (bpftrace likewise widens map values and printf arguments to 64 bits);
- a string of `size` bytes is stored as `size` bytes, NUL-padded, rounded up to 8 bytes; one that
  fills all `size` bytes without a NUL was cut short (the loader prints it with a ".." trailer);
- a record (map key, event) is its fields one after the other, each at an offset aligned to 8.

This module imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass

# Kinds of value. Scalars live in registers; the others only in maps or events.
INT = "int"
BOOL = "bool"
STRING = "string"
COUNT = "count"  # per-CPU u64, summed by the loader
# log2 histogram: one per-CPU u64 per bucket, summed by the loader. Bucket 0 counts negative values,
# bucket 1 the value 0, bucket i >= 2 the values in [2^(i-2), 2^(i-1)).
HIST = "hist"
NONE = "none"  # the type of an expression that has no value (a call to exit(), an error)

KINDS = (INT, BOOL, STRING, COUNT, HIST, NONE)
SCALAR_KINDS = (INT, BOOL)

SLOT = 8  # every field of a record starts at a multiple of this


@dataclass(frozen=True, slots=True)
class Type:
    kind: str
    size: int = 8  # bytes of the value (ints: 1, 2, 4 or 8; strings: buffer size)
    signed: bool = False


INT8 = Type(INT, 1, True)
INT64 = Type(INT, 8, True)
UINT32 = Type(INT, 4, False)
UINT64 = Type(INT, 8, False)
BOOL_T = Type(BOOL, 1, False)
COUNT_T = Type(COUNT, 8, False)
HIST_T = Type(HIST, 8, False)
NONE_T = Type(NONE, 0, False)


def string_type(size: int) -> Type:
    return Type(STRING, size, False)


def type_name(t: Type) -> str:
    """The name bpftrace uses in its messages: 'int8', 'uint64', 'string[16]', 'count_t'..."""
    if t.kind == INT:
        return f"{'' if t.signed else 'u'}int{t.size * 8}"
    if t.kind == STRING:
        return f"string[{t.size}]"
    if t.kind in (COUNT, HIST):
        return f"{t.kind}_t"
    return t.kind


def stored_size(t: Type) -> int:
    """Bytes a value of this type takes in a map or an event (see the module docstring)."""
    if t.kind == STRING:
        return _round_up(t.size)
    return SLOT


def record_offsets(fields: tuple[Type, ...]) -> tuple[tuple[int, ...], int]:
    """Offsets of `fields` laid out one after the other, and the total size of the record."""
    offsets = []
    offset = 0
    for field in fields:
        offsets.append(offset)
        offset += stored_size(field)
    return tuple(offsets), offset


def _round_up(size: int) -> int:
    return (size + SLOT - 1) // SLOT * SLOT
