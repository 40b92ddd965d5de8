"""String functions on strings the program holds: strlen, strcontains, strstr, strncmp, str(s, n),
str_concat.

Strings in memory are NUL-padded to their whole size (storage.py), so every function is
straight-line code over constant byte offsets: no loops for the verifier to bound and no
variable-offset stack accesses, which it refuses. A byte past a string's size reads as 0.

Searching a long haystack (str() of memory, 1024 bytes) that way kept too many bytes live for
BPF's 512-byte stack; it is a loop over the start positions instead, reading the haystack at a
variable offset, which long strings allow: they live in the scratch map, not on the stack
(memory.py).
"""

from __future__ import annotations

from llvmlite import ir

from bpftc.codegen.builder import I1, I8, I64, LOOP, PTR, BpfBuilder


LOOP_FROM = 64  # strings longer than this are searched with a loop, measured word by word


def _byte(bpf: BpfBuilder, string: ir.Value, size: int, offset: int) -> ir.Value:
    if offset >= size:
        return ir.Constant(I8, 0)
    return bpf.ir.load(bpf.at(string, offset), name="byte", typ=I8, align=1)


def strlen(bpf: BpfBuilder, string: ir.Value, size: int) -> ir.Value:
    """The index of the first NUL (size when there is none)."""
    if size > LOOP_FROM:
        return _count_nonzero_bytes(bpf, string, size)
    length = I64(size)
    for offset in reversed(range(size)):
        is_nul = bpf.ir.icmp_unsigned("==", _byte(bpf, string, size, offset), ir.Constant(I8, 0))
        length = bpf.ir.select(is_nul, I64(offset), length, name="length")
    return length


def _occurrences(
    bpf: BpfBuilder, haystack: ir.Value, haystack_size: int, needle: ir.Value, needle_size: int, first_start: int = 0
):
    """(start, i1 whether `needle` occurs at start) for every start in `haystack` from `first_start`.

    At each start i, every needle byte j must be NUL (the needle ended) or equal haystack[i + j];
    haystack bytes past its end are 0 and match no needle byte, so an empty needle occurs at 0."""
    needle_bytes = [_byte(bpf, needle, needle_size, j) for j in range(needle_size)]
    needle_ended = [bpf.ir.icmp_unsigned("==", b, ir.Constant(I8, 0)) for b in needle_bytes]
    for start in range(first_start, max(haystack_size, 1)):
        match = ir.Constant(I1, 1)
        for j, (byte, ended) in enumerate(zip(needle_bytes, needle_ended)):
            same = bpf.ir.icmp_unsigned("==", _byte(bpf, haystack, haystack_size, start + j), byte)
            match = bpf.ir.and_(match, bpf.ir.or_(ended, same))
        yield start, match




def contains(bpf: BpfBuilder, haystack: ir.Value, haystack_size: int, needle: ir.Value, needle_size: int) -> ir.Value:
    """1 when `needle` occurs in `haystack` (an empty needle always does), else 0."""
    if haystack_size > LOOP_FROM and needle_size <= haystack_size:
        first = index(bpf, haystack, haystack_size, needle, needle_size)
        return bpf.as_i64(bpf.ir.icmp_signed(">=", first, I64(0)))
    found = ir.Constant(I1, 0)
    for _, match in _occurrences(bpf, haystack, haystack_size, needle, needle_size):
        found = bpf.ir.or_(found, match, name="found")
    return bpf.as_i64(found)


def index(bpf: BpfBuilder, haystack: ir.Value, haystack_size: int, needle: ir.Value, needle_size: int) -> ir.Value:
    """strstr: the index of the first occurrence of `needle` in `haystack`, or -1."""
    if haystack_size > LOOP_FROM and needle_size <= haystack_size:
        return _index_by_loop(bpf, haystack, haystack_size, needle, needle_size)
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
    padding is zero, so comparing every byte below `limit` is comparing up to the first NUL. A
    constant limit compares only the bytes below it (strncmp(str(p), "/etc", 4): four)."""
    different = ir.Constant(I1, 0)
    compared = max(left_size, right_size)
    if isinstance(limit, ir.Constant):
        compared = min(compared, max(limit.constant, 0))
    for offset in range(compared):
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


def _index_by_loop(bpf: BpfBuilder, haystack: ir.Value, haystack_size: int, needle: ir.Value, needle_size: int):
    """index() of a long haystack: bpf_loop over the starts where the whole needle buffer fits (the
    verifier checks its callback once, where a loop of the program's own would be checked start by
    start), then the last few starts as straight-line code, bytes past the end reading as 0."""
    looped = haystack_size - needle_size + 1  # starts 0 .. looped - 1 read only inside the haystack
    context = bpf.scratch_slot("search_context", 24)  # one per function: searches run one at a time
    result = bpf.at(context, 16)
    bpf.ir.store(haystack, context, align=8)
    bpf.ir.store(needle, bpf.at(context, 8), align=8)
    bpf.store_i64(I64(-1), result)
    callback = _search_callback(bpf, looped, needle_size)
    bpf.call_helper(LOOP, [I64(looped), callback, context, I64(0)], name="searched")
    first = bpf.load_i64(result, name="found_at")
    # The last starts, branch-free too (a branch per start would have the verifier follow each
    # value `first` can take through the rest of the program): the earliest is taken last.
    needle_bytes = [bpf.ir.zext(_byte(bpf, needle, needle_size, j), I64) for j in range(needle_size)]
    for start in reversed(range(looped, haystack_size)):
        differ = I64(0)
        for j, byte in enumerate(needle_bytes):
            here = bpf.ir.zext(_byte(bpf, haystack, haystack_size, start + j), I64)
            differ = bpf.ir.or_(differ, bpf.ir.and_(bpf.ir.xor(here, byte), _counted(bpf, byte)))
        matched = bpf.ir.lshr(bpf.ir.and_(bpf.ir.sub(differ, I64(1)), bpf.ir.not_(differ)), I64(63))  # differ == 0
        take = bpf.ir.sub(I64(0), bpf.ir.and_(matched, bpf.ir.lshr(first, I64(63))))  # all ones: matched, none yet
        first = bpf.ir.or_(bpf.ir.and_(first, bpf.ir.not_(take)), bpf.ir.and_(I64(start), take), name="index")
    return first


def _counted(bpf: BpfBuilder, byte: ir.Value) -> ir.Value:
    """All ones for a needle byte that is not its end (for b in 0..255, (b + 255) >> 8 is 1 when b
    is not 0), else 0: a mask, without a branch."""
    return bpf.ir.sub(I64(0), bpf.ir.lshr(bpf.ir.add(byte, I64(255)), I64(8)))


def _search_callback(bpf: BpfBuilder, looped: int, needle_size: int) -> ir.Function:
    """bpf_loop's callback (index, context): whether the needle occurs at `index` of the haystack;
    the first such index goes into the context's result and stops the loop."""
    inner = bpf.subprogram("search", [I64, PTR])
    index, context = inner.function.args
    haystack = inner.ir.load(context, typ=PTR, align=8, name="haystack")
    needle = inner.ir.load(inner.at(context, 8), typ=PTR, align=8, name="needle")
    with inner.ir.if_then(inner.ir.icmp_unsigned(">=", index, I64(looped))):  # the verifier's bound
        inner.ir.ret(I64(1))
    start = inner.ir.gep(haystack, [index], source_etype=I8, name="at")
    # Branch-free, so that the verifier does not follow a path per byte: the bits in which the
    # haystack differs from each needle byte that is not its end, or'ed together; 0 is a match.
    differ = I64(0)
    for j in range(needle_size):
        byte = inner.ir.zext(inner.ir.load(inner.at(needle, j), name="needle_byte", typ=I8, align=1), I64)
        here = inner.ir.zext(inner.ir.load(inner.at(start, j), name="byte", typ=I8, align=1), I64)
        differ = inner.ir.or_(differ, inner.ir.and_(inner.ir.xor(here, byte), _counted(inner, byte)))
    with inner.ir.if_then(inner.ir.icmp_unsigned("==", differ, I64(0))):
        inner.store_i64(index, inner.at(context, 16))
        inner.ir.ret(I64(1))  # found: stop
    inner.finish()
    return inner.function


def _count_nonzero_bytes(bpf: BpfBuilder, string: ir.Value, size: int) -> ir.Value:
    """strlen() of a long string, NUL-padded to its stored size (a multiple of 8): its non-zero
    bytes, counted a u64 at a time without a branch (a byte's top bit set in `marks` when it is
    not 0; their count by multiplication), since a select per byte overflowed BPF's stack."""
    low7 = I64(0x7F7F7F7F7F7F7F7F)
    count = I64(0)
    for offset in range(0, size, 8):
        word = bpf.load_i64(string, offset, name="word")
        marks = bpf.ir.and_(bpf.ir.or_(bpf.ir.add(bpf.ir.and_(word, low7), low7), word), I64(0x8080808080808080))
        ones = bpf.ir.lshr(marks, I64(7))  # a 1 in the low bit of each non-zero byte
        count = in_order(bpf, bpf.ir.add(count, bpf.ir.lshr(bpf.ir.mul(ones, I64(0x0101010101010101)), I64(56))))
    return count


def in_order(bpf: BpfBuilder, value: ir.Value) -> ir.Value:
    """`value`, through an empty inline assembly statement LLVM cannot see into: the words of a
    long string are then read and folded one after the other, not all read first (LLVM's
    reassociation did that, and spilled them past BPF's 512-byte stack)."""
    barrier = ir.InlineAsm(ir.FunctionType(I64, [I64]), "", "=r,0", side_effect=True)
    return bpf.ir.call(barrier, [value], name="folded")
