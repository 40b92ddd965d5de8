"""A reader of BTF, the kernel's type information (/sys/kernel/btf/vmlinux is world-readable): bpftc
reads the layouts of kernel structs and tracepoint records from it, bpfrun checks that its host
has the fields a bundle reads. Pure Python, standard library only.

The format is include/uapi/linux/btf.h: a header, then a run of type records (each a 12-byte
`btf_type` and kind-specific data after it; type ids count from 1 in file order), then the
strings. One pass records where each type starts (or its result is given back, from bpftc's
cache); a name is found when asked for, through the strings; a type is decoded when asked for.
"""

from __future__ import annotations

import re
import struct
from array import array
from bisect import bisect_left
from functools import lru_cache

from common.record import record

MAGIC = 0xEB9F
MAX_BYTES = 1 << 28  # vmlinux BTF is a few MiB; refuse anything absurd before reading it

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
QUALIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)  # kinds that only name another type

# Bytes after the 12-byte header of a type record: a fixed part, plus this many per member (vlen).
_EXTRA = {INT: (4, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8), FUNC_PROTO: (0, 8),
          VAR: (4, 0), DATASEC: (0, 12), DECL_TAG: (4, 0), ENUM64: (0, 12)}  # fmt: skip
# The same in 4-byte words, header included, for each of the 32 kinds the info word can name.
_FIXED_WORDS = [3 + _EXTRA.get(kind, (0, 0))[0] // 4 for kind in range(32)]
_WORDS_PER_MEMBER = [_EXTRA.get(kind, (0, 0))[1] // 4 for kind in range(32)]


class BtfError(Exception):
    """The file is not BTF this reader understands."""


@record(frozen=True, slots=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int  # 0: not a bitfield


@record(frozen=True, slots=True)
class BtfType:
    id: int
    kind: int
    name: str
    size: int  # INT, STRUCT, UNION, ENUM, FLOAT: bytes
    type_id: int  # PTR, qualifiers, TYPEDEF, FUNC: the type referred to; ARRAY: the element
    members: tuple[Member, ...] = ()  # STRUCT, UNION; FUNC_PROTO: its parameters
    length: int = 0  # ARRAY: elements
    signed: bool = False  # INT; ENUM: values are signed
    bits: int = 0  # INT: value bits
    enumerators: tuple[tuple[str, int], ...] = ()  # ENUM, ENUM64


class Btf:
    """`starts`, when given, is `record_starts` of an earlier Btf of the same bytes (bpftc caches
    it: finding where each of vmlinux's ~130,000 records starts is most of the time reading it)."""

    def __init__(self, data: bytes, starts: array | None = None) -> None:
        if len(data) < 24 or len(data) > MAX_BYTES:
            raise BtfError("not a BTF file (size)")
        magic, _version, _flags, header_length = struct.unpack_from("<HBBI", data, 0)
        if magic != MAGIC:
            raise BtfError("not a BTF file (magic)")
        type_offset, type_length, string_offset, string_length = struct.unpack_from("<IIII", data, 8)
        self._data = data
        self._types_start = header_length + type_offset
        self._types_end = self._types_start + type_length
        self._strings = data[header_length + string_offset : header_length + string_offset + string_length]
        if self._types_end > len(data) or len(self._strings) != string_length:
            raise BtfError("truncated BTF")
        if type_length % 4:
            raise BtfError("malformed BTF types")
        self._words = memoryview(data)[self._types_start : self._types_end].cast("I")
        # type id → where its record starts, in 4-byte words from the first (id 0 is void)
        self._starts = starts if starts is not None and self._fits(starts) else self._walk()
        self._enumerators: dict[str, tuple[int, int]] | None = None

    @classmethod
    def from_file(cls, path: str) -> Btf:
        with open(path, "rb") as file:
            return cls(file.read(MAX_BYTES + 1))

    @property
    def record_starts(self) -> array:
        return self._starts

    def record_offset(self, type_id: int) -> int:
        """Where type `type_id`'s record starts in the bytes."""
        return self._types_start + 4 * self._starts[type_id]

    def _walk(self) -> array:
        """Where each record starts: a walk from record to record, in words, since each kind's
        record has its own length (a plain loop over a word view: the walk is ~50 ms for vmlinux)."""
        words, end = self._words, len(self._words)
        starts = [0]
        append = starts.append
        fixed, each = _FIXED_WORDS, _WORDS_PER_MEMBER
        position = 0
        while position < end:
            append(position)
            info = words[position + 1] if position + 1 < end else 0
            kind = info >> 24 & 0x1F
            position += fixed[kind] + each[kind] * (info & 0xFFFF)
        if position != end:
            raise BtfError("malformed BTF types")
        return array("I", starts)

    def _fits(self, starts: array) -> bool:
        """A cheap check that `starts` belongs to these bytes: its ends line up."""
        if starts.typecode != "I" or not starts or starts[0] != 0:
            return False
        if len(starts) == 1:
            return not len(self._words)
        last = starts[-1]
        if last + 1 >= len(self._words):
            return False
        info = self._words[last + 1]
        kind = info >> 24 & 0x1F
        return last + _FIXED_WORDS[kind] + _WORDS_PER_MEMBER[kind] * (info & 0xFFFF) == len(self._words)

    def _string(self, offset: int) -> str:
        end = self._strings.find(b"\0", offset)
        return self._strings[offset : end if end >= 0 else None].decode("utf-8", "replace")

    def find(self, kind: int, name: str) -> BtfType | None:
        """The first type of `kind` named `name`, found without an index of all names: the name's
        place in the strings, then the records that start with that place (a search in C)."""
        type_id = self._find_id(kind, name)
        return None if type_id is None else self.type(type_id)

    @lru_cache(maxsize=1024)  # noqa: B019 (one Btf per compile; the cache dies with it)
    def _find_id(self, kind: int, name: str) -> int | None:
        found = []
        for name_offset in self._string_offsets(name.encode()):
            # A record's first two words: the name's offset, then an info word whose top byte is
            # the kind (and the kind flag, bit 7) and whose third byte is zero.
            kinds = re.escape(bytes([kind])) + b"|" + re.escape(bytes([kind | 0x80]))
            record = re.compile(re.escape(struct.pack("<I", name_offset)) + b"..\\x00(?:" + kinds + b")", re.S)
            match = record.search(self._data, self._types_start, self._types_end)
            while match:  # searched again from the next byte: an unaligned match may hide an aligned one
                if not (match.start() - self._types_start) % 4:
                    found += self._record_at((match.start() - self._types_start) // 4)
                match = record.search(self._data, match.start() + 1, self._types_end)
        return min(found, default=None)

    def _string_offsets(self, name: bytes) -> list[int]:
        if not name or b"\0" in name:
            return []
        offsets, needle = [], b"\0" + name + b"\0"
        at = self._strings.find(needle)
        while at >= 0:
            offsets.append(at + 1)
            at = self._strings.find(needle, at + 1)
        return offsets

    def _record_at(self, word: int) -> list[int]:
        """[the id of the record starting at `word`], or [] when no record starts there."""
        type_id = bisect_left(self._starts, word, 1)
        return [type_id] if type_id < len(self._starts) and self._starts[type_id] == word else []

    def enumerator(self, name: str) -> tuple[BtfType, int] | None:
        """The enum that has an enumerator `name`, and its value: the first such enum (the index
        of every enumerator is built on first use)."""
        if self._enumerators is None:
            self._enumerators = {}
            for type_id, word in enumerate(self._starts):
                if type_id and self._words[word + 1] >> 24 & 0x1F in (ENUM, ENUM64):
                    for enumerator, value in self.type(type_id).enumerators:
                        self._enumerators.setdefault(enumerator, (type_id, value))
        found = self._enumerators.get(name)
        return None if found is None else (self.type(found[0]), found[1])

    @lru_cache(maxsize=4096)  # noqa: B019 (one Btf per compile; the cache dies with it)
    def type(self, type_id: int) -> BtfType:
        if type_id == 0 or type_id >= len(self._starts):
            return BtfType(0, 0, "void", 0, 0)
        offset = self.record_offset(type_id)
        name_offset, info, size_or_type = struct.unpack_from("<III", self._data, offset)
        kind, vlen, kind_flag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        name = self._string(name_offset) if name_offset else ""
        extra = offset + 12
        if kind == INT:
            (encoding,) = struct.unpack_from("<I", self._data, extra)
            return BtfType(type_id, kind, name, size_or_type, 0, signed=bool(encoding >> 24 & 1), bits=encoding & 0xFF)
        if kind == ARRAY:
            element, _index, length = struct.unpack_from("<III", self._data, extra)
            return BtfType(type_id, kind, name, 0, element, length=length)
        if kind in (STRUCT, UNION):
            members = []
            for index in range(vlen):
                member_name, member_type, offset_info = struct.unpack_from("<III", self._data, extra + 12 * index)
                bit_offset, bitfield = (offset_info & 0xFFFFFF, offset_info >> 24) if kind_flag else (offset_info, 0)
                members.append(Member(self._string(member_name), member_type, bit_offset, bitfield))
            return BtfType(type_id, kind, name, size_or_type, 0, members=tuple(members))
        if kind in (ENUM, ENUM64):
            step = 8 if kind == ENUM else 12
            values = []
            for index in range(vlen):
                if kind == ENUM:
                    value_name, value = struct.unpack_from("<Ii", self._data, extra + step * index)
                else:
                    value_name, low, high = struct.unpack_from("<III", self._data, extra + step * index)
                    value = high << 32 | low
                values.append((self._string(value_name), value))
            return BtfType(type_id, kind, name, size_or_type, 0, signed=bool(kind_flag), enumerators=tuple(values))
        if kind == FUNC_PROTO:  # its parameters, as members without offsets
            parameters = []
            for index in range(vlen):
                parameter_name, parameter_type = struct.unpack_from("<II", self._data, extra + 8 * index)
                parameters.append(Member(self._string(parameter_name), parameter_type, 0, 0))
            return BtfType(type_id, kind, name, 0, size_or_type, members=tuple(parameters))
        if kind in (FLOAT, FWD):
            return BtfType(type_id, kind, name, size_or_type if kind == FLOAT else 0, 0)
        return BtfType(type_id, kind, name, 0, size_or_type)

    def strip(self, type_id: int) -> BtfType:
        """The type behind typedefs and qualifiers (const, volatile...)."""
        for _ in range(64):
            found = self.type(type_id)
            if found.kind not in QUALIFIERS:
                return found
            type_id = found.type_id
        raise BtfError("typedef chain too long")

    def has_field(self, kind: int, struct_name: str, field: str) -> bool:
        """Whether struct (or union) `struct_name` has `field`, directly or in an anonymous member."""
        found = self.find(kind, struct_name)
        return found is not None and self._has_member(found, field, 0)

    def _has_member(self, structure: BtfType, field: str, depth: int) -> bool:
        for member in structure.members:
            if member.name == field:
                return True
            if not member.name and depth < 8:
                inner = self.strip(member.type_id)
                if inner.kind in (STRUCT, UNION) and self._has_member(inner, field, depth + 1):
                    return True
        return False

    def size_of(self, type_id: int) -> int:
        found = self.strip(type_id)
        if found.kind == PTR:
            return 8
        if found.kind == ARRAY:
            return found.length * self.size_of(found.type_id)
        return found.size


def layout_digest(btf: Btf, found: BtfType) -> str:
    """A digest of everything that gives a byte copy of struct or union `found` its meaning: its
    size, and each member's name, offset and type, nested structs and arrays included (not what
    pointers point to). bpftc records it for a struct a bundle copies whole; bpfrun compares its
    host's, since a copy is not relocated field by field as reads are (CO-RE)."""
    from common.signing import sha256  # CPython's own, not OpenSSL's (see there)

    lines: list[str] = []
    _describe(btf, found, lines, 0)
    return sha256("\n".join(lines).encode()).hexdigest()[:16]


def _describe(btf: Btf, found: BtfType, lines: list[str], depth: int) -> None:
    if depth > 32:
        raise BtfError("types nested too deeply")
    if found.kind in (STRUCT, UNION):
        lines.append(f"{found.kind} {found.size} {len(found.members)}")
        for member in found.members:
            lines.append(f"{member.name} {member.bit_offset} {member.bitfield_size}")
            _describe(btf, btf.strip(member.type_id), lines, depth + 1)
    elif found.kind == ARRAY:
        lines.append(f"array {found.length}")
        _describe(btf, btf.strip(found.type_id), lines, depth + 1)
    elif found.kind in (INT, ENUM, ENUM64, FLOAT):
        lines.append(f"{found.kind} {found.size} {found.signed}")
    else:  # a pointer (8 bytes, whatever it points to), a function pointer...
        lines.append(str(found.kind))
