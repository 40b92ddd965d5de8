"""How values of each semantic type are stored in BPF memory: types (bpftc/types.py) → layouts
(common/layout.py), the contract with bpfrun.

Integers and bools are written as 8 bytes, sign- or zero-extended from their width, wherever they
are stored (map keys and values, variables in memory, tuple fields, event payloads), so that every
copy and comparison is a run of u64 moves; their layout keeps their own width, which is how bpfrun
decodes them (and sorts keys, as bpftrace does). Strings keep their size; tuples and records have
each member at an 8-aligned offset (common/layout.py).
"""

from __future__ import annotations

from common import layout
from common.layout import Layout

from bpftc.types import (
    Array,
    Bool,
    Enum,
    Formatted,
    Int,
    Lookup,
    Pointer,
    Record,
    Stack,
    String,
    Struct,
    Symbol,
    Timestamp,
    Tuple,
    Type,
)

SLOT = layout.SLOT


def layout_of(t: Type) -> Layout:
    if isinstance(t, Enum):
        return layout.enum(t.enumerators)
    if isinstance(t, Int):
        return layout.integer(t.size, t.signed)
    if isinstance(t, Bool):
        return Layout(layout.BOOL, 1)
    if isinstance(t, Pointer):
        return Layout(layout.POINTER, SLOT)
    if isinstance(t, Timestamp):
        return Layout(layout.TIMESTAMP, SLOT, text=t.format)
    if isinstance(t, Lookup):
        return Layout(layout.LOOKUP, SLOT, text=t.table)
    if isinstance(t, String):
        return Layout(layout.STRING, t.size)
    if isinstance(t, Stack):
        return layout.stack(t.kind, t.mode, t.depth)
    if isinstance(t, Symbol):
        return Layout(layout.SYMBOL, 16, text=t.kind)
    if isinstance(t, Formatted):
        return Layout(layout.BYTES, layout.BYTES_FORMATS[t.kind] or 8 + t.length, text=t.kind)
    if isinstance(t, Array):
        return layout.array(layout_of(t.element), t.length)
    if isinstance(t, Struct) and t.held is not None:  # a copy of a kernel struct's bytes
        return t.held.layout
    if isinstance(t, Tuple):
        return layout.packed(layout.TUPLE, [("", layout_of(element)) for element in t.elements])
    if isinstance(t, Record):
        return layout.packed(layout.RECORD, [(name, layout_of(e)) for name, e in zip(t.names, t.elements)])
    raise AssertionError(f"no storage for values of type {t}")


def size_of(t: Type) -> int:
    """Bytes a stored value of `t` takes, rounded up to 8 so that copies move whole u64s."""
    return layout.aligned(layout_of(t).size, SLOT)


def in_register(t: Type) -> bool:
    """Integers, bools and pointers are held in one 64-bit register; other values in memory."""
    return isinstance(t, (Int, Bool, Pointer, Timestamp, Lookup))


def layout_of_tuple(types: list[Type]) -> Layout:
    """A record of values of `types`, as an event payload carries them."""
    return layout.packed(layout.TUPLE, [("", layout_of(t)) for t in types])


def sizeof(t: Type) -> int:
    """What sizeof() gives: a C-like size (an int's own width), not the stored 8 bytes."""
    if isinstance(t, Int):
        return t.size
    if isinstance(t, Bool):
        return 1
    if isinstance(t, String):
        return t.size
    if isinstance(t, Array):
        return t.length * sizeof(t.element)
    if isinstance(t, Pointer):
        return SLOT
    if isinstance(t, (Tuple, Record)):  # C's layout: each member at its own alignment
        end, widest = 0, 1
        for element in t.elements:
            alignment = _alignment(element)
            end = layout.aligned(end, alignment) + sizeof(element)
            widest = max(widest, alignment)
        return layout.aligned(end, widest)
    return layout_of(t).size


def _alignment(t: Type) -> int:
    if isinstance(t, (Int, Bool, Pointer)):
        return sizeof(t)
    if isinstance(t, Array):
        return _alignment(t.element)
    if isinstance(t, (Tuple, Record)):
        return max(map(_alignment, t.elements), default=1)
    return 1 if isinstance(t, String) else SLOT
