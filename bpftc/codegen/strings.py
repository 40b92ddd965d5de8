"""String functions on strings the program holds: strlen, strcontains, strstr, strncmp, str(s, n),
str_concat.

Strings in memory are NUL-padded to their whole size (storage.py), so every function is
straight-line code over constant byte offsets: no loops for the verifier to bound and no
variable-offset stack accesses, which it refuses. A byte past a string's size reads as 0.
"""

from __future__ import annotations

from llvmlite import ir

from bpftc.codegen.builder import I1, I8, I64, BpfBuilder


def _byte(bpf: BpfBuilder, string: ir.Value, size: int, offset: int) -> ir.Value:
    if offset >= size:
        return ir.Constant(I8, 0)
    return bpf.ir.load(bpf.at(string, offset), name="byte", typ=I8, align=1)


def strlen(bpf: BpfBuilder, string: ir.Value, size: int) -> ir.Value:
    """The index of the first NUL (size when there is none)."""
    length = I64(size)
    for offset in reversed(range(size)):
        is_nul = bpf.ir.icmp_unsigned("==", _byte(bpf, string, size, offset), ir.Constant(I8, 0))
        length = bpf.ir.select(is_nul, I64(offset), length, name="length")
    return length


def _occurrences(bpf: BpfBuilder, haystack: ir.Value, haystack_size: int, needle: ir.Value, needle_size: int):
    """(start, i1 whether `needle` occurs at start) for every start in `haystack`.

    At each start i, every needle byte j must be NUL (the needle ended) or equal haystack[i + j];
    haystack bytes past its end are 0 and match no needle byte, so an empty needle occurs at 0."""
    needle_bytes = [_byte(bpf, needle, needle_size, j) for j in range(needle_size)]
    needle_ended = [bpf.ir.icmp_unsigned("==", b, ir.Constant(I8, 0)) for b in needle_bytes]
    for start in range(max(haystack_size, 1)):
        match = ir.Constant(I1, 1)
        for j, (byte, ended) in enumerate(zip(needle_bytes, needle_ended)):
            same = bpf.ir.icmp_unsigned("==", _byte(bpf, haystack, haystack_size, start + j), byte)
            match = bpf.ir.and_(match, bpf.ir.or_(ended, same))
        yield start, match


def contains(bpf: BpfBuilder, haystack: ir.Value, haystack_size: int, needle: ir.Value, needle_size: int) -> ir.Value:
    """1 when `needle` occurs in `haystack` (an empty needle always does), else 0."""
    found = ir.Constant(I1, 0)
    for _, match in _occurrences(bpf, haystack, haystack_size, needle, needle_size):
        found = bpf.ir.or_(found, match, name="found")
    return bpf.as_i64(found)


def index(bpf: BpfBuilder, haystack: ir.Value, haystack_size: int, needle: ir.Value, needle_size: int) -> ir.Value:
    """strstr: the index of the first occurrence of `needle` in `haystack`, or -1."""
    matches = list(_occurrences(bpf, haystack, haystack_size, needle, needle_size))
    first = I64(-1)
    for start, match in reversed(matches):  # the earliest match is selected last
        first = bpf.ir.select(match, I64(start), first, name="index")
    return first


def truncate(bpf: BpfBuilder, string: ir.Value, size: int, length: ir.Value) -> None:
    """str(s, length) in place: keep the first length - 1 bytes and a NUL (none for length <= 0)."""
    positive = bpf.ir.icmp_signed(">", length, I64(0))
    kept = bpf.ir.select(positive, bpf.ir.sub(length, I64(1)), I64(0), name="kept")
    for offset in range(size):
        pointer = bpf.at(string, offset)
        byte = bpf.ir.load(pointer, name="byte", typ=I8, align=1)
        inside = bpf.ir.icmp_unsigned("<", I64(offset), kept)
        bpf.ir.store(bpf.ir.select(inside, byte, ir.Constant(I8, 0)), pointer, align=1)


def differ(
    bpf: BpfBuilder, left: ir.Value, left_size: int, right: ir.Value, right_size: int, limit: ir.Value
) -> ir.Value:
    """strncmp(left, right, limit) as 0 (the same up to `limit` bytes) or 1: past both NULs the
    padding is zero, so comparing every byte below `limit` is comparing up to the first NUL."""
    different = ir.Constant(I1, 0)
    for offset in range(max(left_size, right_size)):
        unequal = bpf.ir.icmp_unsigned("!=", _byte(bpf, left, left_size, offset), _byte(bpf, right, right_size, offset))
        counted = bpf.ir.icmp_unsigned("<", I64(offset), limit)
        different = bpf.ir.or_(different, bpf.ir.and_(unequal, counted), name="different")
    return bpf.as_i64(different)


def concatenate(
    bpf: BpfBuilder, destination: ir.Value, left: ir.Value, left_size: int, right: ir.Value, right_size: int
) -> None:
    """str_concat: `left` up to its NUL, then `right`, into `destination` of left_size + right_size
    - 1 bytes (NUL-padded to its whole stored size). Byte k is left[k] below left's length, else
    right[k - length]: a choice among the lengths left can have, no variable offset."""
    length = strlen(bpf, left, left_size)
    size = left_size + right_size - 1
    for k in range(size):
        byte = _byte(bpf, left, left_size, k)
        for start in range(min(k, left_size) + 1):  # left's length is `start`: byte k is right[k - start]
            here = bpf.ir.icmp_unsigned("==", length, I64(start))
            byte = bpf.ir.select(here, _byte(bpf, right, right_size, k - start), byte, name="byte")
        bpf.ir.store(byte, bpf.at(destination, k), align=1)
