"""Storage descriptors: how a value sits in BPF memory (a map key or value, an event record) and how
bpfrun decodes it. This is the whole contract about values between bpftc and bpfrun; the compiler's
semantic types (bpftc/types.py) never cross.

A `Layout` has a kind, a size in bytes, and for tuples and records its fields at explicit offsets:

    int, uint   size 1, 2, 4 or 8; little-endian, two's complement for int
    bool        size 1..8; any non-zero byte is true
    string      size N; NUL-terminated within N bytes, else it was cut short (printed with "..")
    timestamp   size 8: nanoseconds since boot, printed as wall-clock time by strftime(`text`)
    pointer     size 8: an address, printed in hex (0x7f20e391b0b1)
    stack       size 16: a stack id in the bundle's stack map (negative: none was taken), then the
                process id of a user stack; `text` is "KIND:MODE:DEPTH", KIND kstack or ustack,
                MODE bpftrace, perf or raw (how frames print), DEPTH the frames printed at most
    bytes       raw bytes printed as `text` says: "buffer" (a u64 length, then the bytes: printable
                ASCII as it is, other bytes as backslash-x and two hex digits), "macaddr" (6 bytes, aa:bb:cc:dd:ee:ff),
                "inet" (a u64 address family, then 16 bytes: an IPv4 or IPv6 address)
    symbol      size 16: an address, then the process id for a user address; printed as the
                symbol that holds it; `text` is ksym or usym
    enum        size 8: an unsigned number printed as the name `text` gives it ("0:NAME,1:OTHER"),
                as a number when it gives none; JSON prints the number
    lookup      size 8: a number bpfrun prints as the name it has on its host; `text` says which
                table: errno (strerror's message), signal (signal_name's), uid (the user's name),
                syscall (syscall_name's, from the host's libseccomp), cgroup (cgroup_path's: the
                paths of the cgroup of that id in the host's hierarchies)
    array       N elements of one layout (its one field, at offset 0), packed: element i at
                i * element size; size N * element size; printed `[a,b]`
    tuple       fields at their offsets (each aligned to 8), printed `(a, b)`
    record      named fields at their offsets (each aligned to 8), printed `{ .a = 1, .b = x }`
    none        size 0: no value

Imports only the standard library.
"""

from __future__ import annotations

from common.record import record

INT = "int"
UINT = "uint"
BOOL = "bool"
STRING = "string"
TUPLE = "tuple"
RECORD = "record"
ARRAY = "array"
TIMESTAMP = "timestamp"
LOOKUP = "lookup"
POINTER = "pointer"
ARRAY_ELEMENTS = (INT, UINT, BOOL, POINTER, STRING, RECORD)  # what an array holds
STACK = "stack"
STACK_KINDS = ("kstack", "ustack")
STACK_MODES = ("bpftrace", "perf", "raw")
MAX_STACK_DEPTH = 127  # the kernel's default perf_event_max_stack
SYMBOL = "symbol"
BYTES = "bytes"
BYTES_FORMATS = {"buffer": None, "macaddr": 8, "inet": 24}  # the size of each, None: 8 + any length
SYMBOL_KINDS = ("ksym", "usym")
LOOKUP_TABLES = ("errno", "signal", "uid", "syscall", "cgroup")
NONE = "none"
ENUM = "enum"
MAX_ENUM_TEXT = 1 << 16
KINDS = (INT, UINT, BOOL, STRING, TUPLE, RECORD, ARRAY, TIMESTAMP, LOOKUP, POINTER, STACK, SYMBOL, BYTES, ENUM, NONE)
INTEGER_SIZES = (1, 2, 4, 8)
SLOT = 8  # fields of tuples and records start at multiples of this


@record(frozen=True, slots=True)
class Field:
    name: str  # '' for a tuple element
    offset: int
    layout: Layout


@record(frozen=True, slots=True)
class Layout:
    kind: str  # one of KINDS
    size: int
    fields: tuple[Field, ...] = ()
    text: str = ""  # timestamp: its strftime format; lookup: its table


def integer(size: int, signed: bool) -> Layout:
    return Layout(INT if signed else UINT, size)


U64 = integer(8, False)
I64 = integer(8, True)
U32 = integer(4, False)
NO_VALUE = Layout(NONE, 0)


def stack(kind: str, mode: str, depth: int) -> Layout:
    return Layout(STACK, 16, text=f"{kind}:{mode}:{depth}")


def stack_parts(text: str) -> tuple[str, str, int] | None:
    """(kind, mode, depth) of a stack layout's text, or None when it is not one."""
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in STACK_KINDS or parts[1] not in STACK_MODES or not parts[2].isdigit():
        return None
    depth = int(parts[2])
    return (parts[0], parts[1], depth) if 1 <= depth <= MAX_STACK_DEPTH else None


def array(element: Layout, length: int) -> Layout:
    return Layout(ARRAY, element.size * length, (Field("", 0, element),))


def enum(enumerators: tuple[tuple[str, int], ...]) -> Layout:
    return Layout(ENUM, 8, text=",".join(f"{value}:{name}" for name, value in enumerators))


def enum_names(text: str) -> dict[int, str] | None:
    """An enum layout's names by value, or None when its text is not "VALUE:NAME,..."."""
    if len(text) > MAX_ENUM_TEXT:
        return None
    names: dict[int, str] = {}
    for item in text.split(",") if text else ():
        value, _, name = item.partition(":")
        if not name.isidentifier() or not value.lstrip("-").isdigit() or len(value) > 20:
            return None
        names.setdefault(int(value), name)
    return names


def aligned(offset: int, alignment: int) -> int:
    return (offset + alignment - 1) // alignment * alignment


def packed(kind: str, members: list[tuple[str, Layout]]) -> Layout:
    """A tuple or record of `members`, each at the next offset aligned to SLOT; the whole rounded up
    to SLOT. Every field (and the padding after it) is then a run of whole, aligned u64s, which is
    how BPF code copies and compares them (the verifier wants aligned stack accesses)."""
    offset = 0
    fields = []
    for name, member in members:
        fields.append(Field(name, offset, member))
        offset = aligned(offset + member.size, SLOT)
    return Layout(kind, offset, tuple(fields))


def problem(layout: Layout, depth: int = 0) -> str | None:
    """What is wrong with a layout that did not come from bpftc, or None: unknown kinds, sizes
    that do not fit the kind, fields outside the value. For bpfrun's checks of a bundle."""
    if depth > 16:
        return "nested too deeply"
    if layout.kind not in KINDS:
        return f"unknown kind {layout.kind!r}"
    if layout.kind in (INT, UINT) and layout.size not in INTEGER_SIZES:
        return f"an integer of {layout.size} bytes"
    if layout.kind == BOOL and not 1 <= layout.size <= 8:
        return f"a bool of {layout.size} bytes"
    if layout.kind == STRING and not 1 <= layout.size <= 1 << 16:
        return f"a string of {layout.size} bytes"
    if layout.kind == NONE and layout.size != 0:
        return "a none value with a size"
    if layout.kind in (TIMESTAMP, POINTER) and layout.size != 8:
        return f"a timestamp of {layout.size} bytes"
    if layout.kind == LOOKUP and (layout.size != 8 or layout.text not in LOOKUP_TABLES):
        return f"a lookup of {layout.size} bytes in table {layout.text!r}"
    if layout.kind == STACK and (layout.size != 16 or stack_parts(layout.text) is None):
        return f"a stack of {layout.size} bytes described as {layout.text!r}"
    if layout.kind == BYTES and (
        layout.text not in BYTES_FORMATS or layout.size != (BYTES_FORMATS[layout.text] or layout.size)
        or not 9 <= layout.size <= 8 + 1024 and layout.text == "buffer"
    ):  # fmt: skip
        return f"bytes of {layout.size} bytes printed as {layout.text!r}"
    if layout.kind == SYMBOL and (layout.size != 16 or layout.text not in SYMBOL_KINDS):
        return f"a symbol of {layout.size} bytes described as {layout.text!r}"
    if layout.kind == ENUM:
        return None if layout.size == 8 and enum_names(layout.text) is not None else "an enum without names"
    if layout.text and (layout.kind not in (TIMESTAMP, LOOKUP, STACK, SYMBOL, BYTES) or len(layout.text) > 1024):
        return "a format where none belongs, or one longer than 1024"
    if layout.kind in (TUPLE, RECORD):
        for field in layout.fields:
            if field.offset < 0 or field.offset + field.layout.size > layout.size:
                return f"field {field.name or '?'} outside its {layout.size}-byte {layout.kind}"
            inner = problem(field.layout, depth + 1)
            if inner is not None:
                return inner
    elif layout.kind == ARRAY:
        return _array_problem(layout, depth)
    elif layout.fields:
        return f"a {layout.kind} with fields"
    return None


MAX_ARRAY_BYTES = 1 << 16


def _array_problem(array_layout: Layout, depth: int) -> str | None:
    if len(array_layout.fields) != 1 or array_layout.fields[0].offset != 0:
        return "an array without exactly one element layout"
    element = array_layout.fields[0].layout
    if element.kind not in ARRAY_ELEMENTS or element.size == 0:
        return f"an array of {element.kind}"
    inner = problem(element, depth + 1)
    if inner is not None:
        return inner
    if not 0 <= array_layout.size <= MAX_ARRAY_BYTES or array_layout.size % element.size:
        return f"an array of {array_layout.size} bytes of {element.size}-byte elements"
    return None
